// A plain-JS app on its own origin: signs in to sessionward in cookie mode, calls a protected endpoint with
// auth.fetch() (which refreshes and retries a 401) and lists the devices.
import { SERVICE } from "./config.js";
import { SignedOutError, createClient } from "./sessionward.js";

const auth = createClient({ url: SERVICE, mode: "cookie" });
const $ = (id) => document.getElementById(id);

function show(signedIn, status = "") {
  $("signin").hidden = signedIn;
  $("account").hidden = !signedIn;
  $("status").textContent = status;
}

async function load() {
  const response = await auth.fetch(`${SERVICE}/api/v1/auth/me`); // any protected API is called the same way
  if (!response.ok) throw new Error(`GET /me answered ${response.status}`);
  $("email").textContent = (await response.json()).data.user.email;
  const { current_session: current, other_sessions: others } = await auth.sessions.list();
  $("devices").replaceChildren(
    ...[current, ...others].filter(Boolean).map((session) => {
      const item = document.createElement("li");
      const info = session.device_info ?? {};
      item.textContent = `${info.browser ?? "?"} on ${info.os ?? "?"}${session.is_current ? " (this device)" : ""}`;
      return item;
    }),
  );
  show(true);
}

async function attempt(work) {
  try {
    await work();
  } catch (error) {
    if (error instanceof SignedOutError) show(false, error.reason === "none" ? "" : `Signed out (${error.reason}).`);
    else show(auth.signedIn, `Error: ${error.message}`);
  }
}

auth.onAuthStateChange((event, { reason }) => {
  if (event === "signed_out") show(false, `Signed out (${reason}).`);
  if (event === "signed_in") attempt(load);
});

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData($("signin"));
  attempt(() => auth.signIn(data.get("email"), data.get("password")));
});
$("reload").addEventListener("click", () => attempt(load));
$("signout").addEventListener("click", () => attempt(() => auth.signOut()));
$("signout-all").addEventListener("click", () => attempt(() => auth.signOut({ all: true })));

attempt(async () => {
  await auth.getAccessToken(); // a session from an earlier visit comes back through the refresh cookie
});
