// The pages: one document with three views (sign in, create account, account), filled from the JSON API.
// DOM is built from <template>s with textContent only (the CSP refuses innerHTML-style sinks).
// Tokens: sessionward-js (js/ in the repository; its build is ./sessionward.js) in cookie mode, same origin.
import { ApiError, SignedOutError, createClient } from "./sessionward.js";

const auth = createClient({ url: "", mode: "cookie" });

const $ = (id) => document.getElementById(id);
const POLL_MS = 30_000;
const NOTICES = {
  revoked: "Your session has ended — it was signed out from another device or it expired. Please sign in again.",
  signed_out: "You have signed out.",
  deleted: "Your account has been deleted.",
};
const VIEWS = { "/": "account", "/signin": "signin", "/signup": "signup" };

let view = null;
let poll = 0;
let me = null;

// ---------------------------------------------------------------- views

function show(name, { focus = true } = {}) {
  view = name;
  $("loading").hidden = true;
  for (const id of ["signin", "signup", "account"]) $(`view-${id}`).hidden = id !== name;
  $("header-account").hidden = name !== "account";
  document.title = { signin: "Sign in", signup: "Create an account", account: "Your account" }[name] + " · sessionward";
  if (focus) {
    const first = name === "account" ? $("account-title") : $(`${name}-form`).querySelector("input");
    if (name === "account") $("account-title").setAttribute("tabindex", "-1");
    first.focus();
  }
}

function go(path, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", path);
  route();
}

function toSignIn(reason) {
  stopPolling();
  const query = NOTICES[reason] ? `?reason=${encodeURIComponent(reason)}` : "";
  location.replace(`/signin${query}`);
}

async function route() {
  const name = VIEWS[location.pathname] ?? "account";
  if (name === "account") return openAccount();
  stopPolling();
  if (name === "signin") {
    const reason = new URLSearchParams(location.search).get("reason");
    const notice = $("signin-notice");
    notice.textContent = NOTICES[reason] ?? "";
    notice.hidden = !NOTICES[reason];
    notice.classList.toggle("warning", reason === "revoked");
  }
  show(name);
}

// ---------------------------------------------------------------- forms

function formError(id, error) {
  const box = $(id);
  if (error === null) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  const field = error.errors?.[0]?.message;
  box.textContent = field && field !== error.message ? `${error.message} ${field}` : error.message;
  box.hidden = false;
}

function busy(form, on) {
  for (const element of form.elements) element.disabled = on;
  form.setAttribute("aria-busy", String(on));
}

function handle(formId, errorId, work) {
  const form = $(formId);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError(errorId, null);
    if (!form.checkValidity()) {
      const invalid = [...form.elements].find((element) => !element.checkValidity());
      formError(errorId, { message: invalid.validationMessage || "Please check this form." });
      invalid.focus();
      return;
    }
    const data = new FormData(form); // before busy(): disabled fields are left out of a FormData
    busy(form, true);
    try {
      await work(data);
    } catch (error) {
      if (error instanceof SignedOutError) return;
      formError(errorId, error instanceof ApiError ? error : { message: "Something went wrong. Please try again." });
    } finally {
      busy(form, false);
    }
  });
}

// A successful sign-in opens the account page through the "signed_in" event (as in the other tabs).
handle("signin-form", "signin-error", async (data) => {
  await auth.signIn(data.get("email"), data.get("password"));
  $("signin-form").reset();
});

handle("signup-form", "signup-error", async (data) => {
  await auth.signUp(data.get("email"), data.get("password"), data.get("name") || undefined);
  await auth.signIn(data.get("email"), data.get("password"));
  $("signup-form").reset();
});

handle("password-form", "password-error", async (data) => {
  await auth.changePassword(data.get("current_password"), data.get("new_password"));
  $("password-form").reset();
  notify("Password changed. Your other devices were signed out.");
  await loadAccount();
});

handle("delete-form", "delete-error", async (data) => {
  await auth.deleteAccount(data.get("password"));
});

for (const link of document.querySelectorAll("a[data-view]")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    go(link.getAttribute("href"));
  });
}

$("signout").addEventListener("click", async () => {
  $("signout").disabled = true;
  try {
    await auth.signOut();
  } catch {
    $("signout").disabled = false;
    notify("Couldn't sign out. Please try again.");
  }
});

$("signout-others").addEventListener("click", async () => {
  const button = $("signout-others");
  button.disabled = true;
  try {
    const revoked = await auth.sessions.revokeOthers();
    notify(revoked === 1 ? "Signed out of 1 other device." : `Signed out of ${revoked} other devices.`);
    await loadAccount();
  } catch (error) {
    if (!(error instanceof SignedOutError)) notify(error.message);
    button.disabled = false;
  }
});

const dialog = $("delete-dialog");
$("delete-open").addEventListener("click", () => {
  formError("delete-error", null);
  $("delete-form").reset();
  dialog.showModal();
});
$("delete-cancel").addEventListener("click", () => dialog.close());

function notify(message) {
  const notice = $("account-notice");
  notice.textContent = message;
  notice.hidden = false;
}

// ---------------------------------------------------------------- account page

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const absolute = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });
const UNITS = [  // [unit, seconds in it, used below this many seconds]
  ["minute", 60, 45 * 60],
  ["hour", 3600, 22 * 3600],
  ["day", 86400, 14 * 86400],
  ["week", 7 * 86400, 8 * 7 * 86400],
  ["month", 30.44 * 86400, 365 * 86400],
  ["year", 365.25 * 86400, Infinity],
];

/** "5 minutes ago", "yesterday", "9 days ago", "3 weeks ago". */
function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  if (Math.abs(seconds) < 45) return "just now";
  const [unit, size] = UNITS.find(([, , below]) => Math.abs(seconds) < below);
  return relative.format(Math.round(seconds / size), unit);
}

function timeElement(element, iso, text) {
  element.dateTime = iso;
  element.title = absolute.format(new Date(iso));
  element.textContent = text;
}

function deviceLabel(info) {
  const browser = info?.browser && info.browser !== "Unknown" ? info.browser : "Unknown browser";
  const os = info?.os && info.os !== "Unknown" ? info.os : null;
  return os ? `${browser} on ${os}` : browser;
}

function deviceIcon(info) {
  return { Desktop: "desktop", Mobile: "mobile", Tablet: "tablet" }[info?.device] ?? "unknown";
}

function renderDevice(session) {
  const item = $("device-template").content.firstElementChild.cloneNode(true);
  const info = session.device_info ?? {};
  const label = deviceLabel(info);
  item.dataset.session = session.id;
  item.classList.toggle("current", session.is_current);
  item.querySelector("use").setAttribute("href", `#i-${deviceIcon(info)}`);
  item.querySelector(".device-label").textContent = label;
  item.querySelector(".badge").hidden = !session.is_current;
  item.querySelector(".device-kind").textContent = info.device && info.device !== "Unknown" ? info.device : "Device";
  item.querySelector(".device-ip").textContent = session.ip_address ? `IP ${session.ip_address}` : "IP unknown";
  const active = document.createElement("time");
  timeElement(active, session.last_activity, session.is_current ? "Active now" : `Last active ${ago(session.last_activity)}`);
  item.querySelector(".device-active").replaceChildren(active);
  const since = document.createElement("time");
  timeElement(since, session.created_at, `Signed in ${ago(session.created_at)}`);
  item.querySelector(".device-since").replaceChildren(since);
  const button = item.querySelector(".device-signout");
  if (session.is_current) {
    button.remove();
  } else {
    button.querySelector(".visually-hidden").textContent = ` ${label}, last active ${ago(session.last_activity)}`;
    button.addEventListener("click", () => signOutDevice(session.id, label, button));
  }
  return item;
}

async function signOutDevice(id, label, button) {
  button.disabled = true;
  try {
    await auth.sessions.revoke(id);
    notify(`Signed out ${label}.`);
  } catch (error) {
    if (error instanceof SignedOutError) return;
    notify(error.status === 404 ? `${label} was already signed out.` : error.message);
  }
  await loadAccount().catch(() => {});
  $("devices-title").focus();
}

const EVENTS = {
  user_registered: ["user", "Account created"],
  login_succeeded: ["signin", "New sign-in"],
  login_failed: ["alert", "Failed sign-in attempt", "warn"],
  session_revoked: ["signout", "Device signed out"],
  session_evicted: ["signout", "Device signed out: too many devices were signed in"],
  sessions_revoked: ["signout", "Signed out of other devices"],
  logout: ["signout", "Signed out"],
  refresh_token_reused: ["alert", "Token reuse detected: that device was signed out", "danger"],
  device_mismatch: ["alert", "Blocked a token used from a different browser", "danger"],
  ip_changed: ["globe", "Session used from a new IP address"],
  password_changed: ["key", "Password changed"],
  token_revoked: ["signout", "Token revoked"],
};

function eventTitle(event) {
  const [, title] = EVENTS[event.type] ?? ["alert", event.type.replaceAll("_", " ")];
  const details = event.details ?? {};
  if (event.type === "sessions_revoked" && Number.isInteger(details.revoked)) {
    const count = details.revoked === 1 ? "1 other device" : `${details.revoked} other devices`;
    return details.by_admin ? `An administrator signed out ${details.revoked} devices` : `Signed out of ${count}`;
  }
  if (event.type === "logout" && details.all) return "Signed out everywhere";
  return title;
}

function eventDetail(event) {
  const parts = [];
  const browser = event.device_info?.browser;
  if (browser && browser !== "Unknown") parts.push(deviceLabel(event.device_info));
  if (event.type === "ip_changed" && event.details?.to) parts.push(`now ${event.details.to}`);
  else if (event.ip_address) parts.push(event.ip_address);
  const ended = event.type === "password_changed" ? event.details?.sessions_revoked : 0;
  if (Number.isInteger(ended) && ended > 0) {
    parts.push(ended === 1 ? "1 other device signed out" : `${ended} other devices signed out`);
  }
  return parts.join(" · ");
}

function renderEvent(event) {
  const item = $("event-template").content.firstElementChild.cloneNode(true);
  const [icon, , tone] = EVENTS[event.type] ?? ["alert"];
  item.dataset.type = event.type;
  if (tone) item.classList.add(tone);
  item.querySelector("use").setAttribute("href", `#i-${icon}`);
  item.querySelector(".event-title").textContent = eventTitle(event);
  const detail = eventDetail(event);
  item.querySelector(".event-detail").textContent = detail;
  item.querySelector(".event-detail").hidden = !detail;
  timeElement(item.querySelector(".event-time"), event.at, ago(event.at));
  return item;
}

function empty(text) {
  const item = document.createElement("li");
  item.className = "empty";
  item.textContent = text;
  return item;
}

async function loadAccount() {
  const [sessions, events] = await Promise.all([auth.sessions.list(), auth.events.list({ limit: 10 })]);
  const { current_session: current, other_sessions: others } = sessions;
  const list = [current, ...others].filter(Boolean).map(renderDevice);
  $("devices").replaceChildren(...list);
  $("devices").setAttribute("aria-busy", "false");
  $("signout-others").disabled = others.length === 0;
  const items = events.map(renderEvent);
  $("events").replaceChildren(...(items.length ? items : [empty("Nothing yet.")]));
}

async function openAccount() {
  try {
    if (!auth.signedIn) await auth.refresh();
    if (me === null) me = await auth.getUser();
    $("account-email").textContent = me.email;
    $("header-email").textContent = me.email;
    for (const id of ["password-username", "delete-username"]) $(id).value = me.email;
    await loadAccount();
    show("account", { focus: view !== null });
    startPolling();
  } catch (error) {
    if (error instanceof SignedOutError) return toSignIn(error.reason);
    $("loading").textContent = "Couldn't load your account. Retrying…";
    setTimeout(route, 5_000);
  }
}

function startPolling() {
  stopPolling();
  poll = setInterval(() => {
    if (document.visibilityState === "visible") loadAccount().catch(() => {});
  }, POLL_MS);
}

function stopPolling() {
  clearInterval(poll);
}

document.addEventListener("visibilitychange", () => {
  if (view === "account" && document.visibilityState === "visible") loadAccount().catch(() => {});
});

// ---------------------------------------------------------------- wiring

auth.onAuthStateChange((event, { reason }) => {
  if (event === "signed_out") toSignIn(reason);
  if (event === "signed_in" && (view === "signin" || view === "signup")) go("/", { replace: true });
  if (event !== "signed_out") $("trouble").hidden = event !== "refresh_failed";
});
window.addEventListener("popstate", route);
route();
