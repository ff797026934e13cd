// The pages: one document with its views (sign in, create account, account, and the account-email pages that
// the mails link to), filled from the JSON API.
// DOM is built from <template>s with textContent only (the CSP refuses innerHTML-style sinks).
// Tokens: sessionward-js (js/ in the repository; its build is ./sessionward.js) in cookie mode, same origin.
import { ApiError, SignedOutError, browserAssertion, createClient } from "./sessionward.js";

const auth = createClient({ url: "", mode: "cookie" });

const $ = (id) => document.getElementById(id);
const POLL_MS = 30_000;
const NOTICES = {
  revoked: "Your session has ended — it was signed out from another device or it expired. Please sign in again.",
  signed_out: "You have signed out.",
  deleted: "Your account has been deleted.",
  password_reset: "Your password was reset and every device was signed out. Sign in with your new password.",
};
const VIEWS = {
  "/": "account",
  "/signin": "signin",
  "/signup": "signup",
  "/forgot-password": "forgot",
  "/reset-password": "reset",
  "/verify-email": "verify",
};
const TITLES = {
  signin: "Sign in",
  signup: "Create an account",
  account: "Your account",
  forgot: "Reset your password",
  reset: "Choose a new password",
  verify: "Confirm your address",
};
const INVALID_LINK = "This link is invalid or has expired";
const PASSKEYS = typeof window.PublicKeyCredential === "function";

let view = null;
let poll = 0;
let me = null;

// ---------------------------------------------------------------- views

function show(name, { focus = true } = {}) {
  view = name;
  $("loading").hidden = true;
  for (const id of Object.keys(TITLES)) $(`view-${id}`).hidden = id !== name;
  $("header-account").hidden = name !== "account";
  document.title = `${TITLES[name]} · sessionward`;
  if (focus) {
    const form = $(`${name}-form`);
    const first = name === "account" || form.hidden ? $(`${name}-title`) : form.querySelector("input");
    first.setAttribute("tabindex", "-1");
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
    challenge = null;
    $("signin-mfa-form").hidden = true;
    $("signin-form").hidden = false;
  }
  if (name === "reset" || name === "verify") {
    link = takeFragment() ?? link;
    if (name === "verify") return openVerify();
    if (!link?.token) {
      show("reset", { focus: false });
      formError("reset-error", { message: `${INVALID_LINK}. Ask for a new one below.` });
      return;
    }
  }
  show(name);
}

// ---------------------------------------------------------------- links from mails

let link = null;

/** The token of a mail's link: it comes in the fragment (never sent to a server or in a Referer), and is taken
 * out of the address bar at once so it does not stay in the history. */
function takeFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!location.hash) return null;
  history.replaceState(null, "", location.pathname);
  const change = params.get("change");
  return change ? { token: change, change: true } : { token: params.get("token"), change: false };
}

async function openVerify() {
  const title = $("verify-title");
  const notice = $("verify-notice");
  $("verify-continue").hidden = true;
  $("verify-form").hidden = true;
  notice.hidden = true;
  show("verify", { focus: false });
  if (!link?.token) {  // no link: the page to ask for one (a sign-in refused for an unverified address leads here)
    title.textContent = "Confirm your address";
    $("verify-form").hidden = false;
    $("verify-email").focus();
    return;
  }
  try {
    const { token, change } = link;
    const user = change ? await auth.email.confirmChange(token) : await auth.email.verify(token);
    link = null;
    me = null;
    title.textContent = "Address confirmed";
    notice.textContent = change ? `Your account's address is now ${user.email}.` : `${user.email} is verified. Thank you.`;
    notice.classList.remove("warning");
    $("verify-continue").hidden = false;
  } catch (error) {
    title.textContent = "This link didn't work";
    notice.textContent = error instanceof ApiError && error.status === 409
      ? "That address now belongs to another account."
      : `${INVALID_LINK}.`;
    notice.classList.add("warning");
    $("verify-form").hidden = false;
  }
  notice.hidden = false;
  title.setAttribute("tabindex", "-1");
  title.focus();
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
let challenge = null;
let recoveryMode = false;

handle("signin-form", "signin-error", async (data) => {
  let result;
  try {
    result = await auth.signIn(data.get("email"), data.get("password"));
  } catch (error) {
    $("signin-verify").hidden = !(error instanceof ApiError && error.status === 403);
    throw error;
  }
  $("signin-form").reset();
  if (result.mfaRequired) secondStage(result.challenge, result.factors, result.passkeyOptions);
});

$("signin-passkey").hidden = !PASSKEYS;
$("signin-passkey").addEventListener("click", () => passkeyStep("signin-error", async () => {
  await auth.signInWithPasskey();
}));

/** A WebAuthn ceremony from a button: the browser's own dialog asks; a cancelled one is no error. */
async function passkeyStep(errorId, work) {
  formError(errorId, null);
  try {
    await work();
  } catch (error) {
    if (error instanceof SignedOutError) return;
    if (error?.name === "NotAllowedError" || error?.name === "AbortError") {
      formError(errorId, { message: "No passkey was used." });
    } else {
      formError(errorId, error instanceof ApiError ? error : { message: error?.message ?? "That didn't work." });
    }
  }
}

let passkeyOptions = null;

$("signin-mfa-passkey").addEventListener("click", () => passkeyStep("signin-mfa-error", async () => {
  await auth.signInMfa(challenge, { passkey: await browserAssertion(passkeyOptions) });
}));

/** The account has two-step verification: the code (or a recovery code, or a passkey) finishes the sign-in. */
function secondStage(value, factors = [], options = null) {
  passkeyOptions = options;
  $("signin-mfa-passkey").hidden = !(PASSKEYS && options && factors.includes("passkey"));
  challenge = value;
  setRecoveryMode(false);
  $("signin-form").hidden = true;
  $("signin-mfa-form").hidden = false;
  formError("signin-mfa-error", null);
  $("signin-code").focus();
}

function setRecoveryMode(on) {
  recoveryMode = on;
  $("signin-code-label").textContent = on ? "Recovery code" : "Authentication code";
  $("signin-mfa-hint").textContent = on
    ? "Enter one of the recovery codes you saved when you turned on two-step verification."
    : "Enter the 6-digit code from your authenticator app.";
  $("signin-code").inputMode = on ? "text" : "numeric";
  $("signin-code").autocomplete = on ? "off" : "one-time-code";
  $("signin-use-recovery").textContent = on ? "Use the authenticator app instead" : "Use a recovery code instead";
}

function firstStage() {
  challenge = null;
  $("signin-mfa-form").reset();
  $("signin-mfa-form").hidden = true;
  $("signin-form").hidden = false;
  $("signin-email").focus();
}

handle("signin-mfa-form", "signin-mfa-error", async (data) => {
  const code = data.get("code").trim();
  try {
    await auth.signInMfa(challenge, recoveryMode ? { recovery_code: code } : { totp: code });
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) {  // expired, or burnt by wrong codes
      firstStage();
      formError("signin-error", { message: "That took too long or too many tries. Please sign in again." });
      return;
    }
    $("signin-code").select();
    throw error;
  }
  $("signin-mfa-form").reset();
});

$("signin-use-recovery").addEventListener("click", () => {
  setRecoveryMode(!recoveryMode);
  $("signin-code").value = "";
  $("signin-code").focus();
});
$("signin-mfa-cancel").addEventListener("click", firstStage);

// ---------------------------------------------------------------- confirm it's you (step-up)

/** Runs `work`; when the service asks for a recent sign-in first, asks the user to confirm it's them (the
 * password, or a code when the account has two-step verification) and runs it again. */
async function sensitive(work) {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "step_up_required")) throw error;
    if (!(await confirmIdentity(error.aal))) throw new ApiError(403, { message: "Not confirmed: nothing was changed." });
    return work();
  }
}

let confirming = null;

function confirmIdentity(aal) {
  const dialog = $("stepup-dialog");
  const withCode = aal === "aal2";
  $("stepup-form").reset();
  formError("stepup-error", null);
  $("stepup-text").textContent = withCode
    ? "For your security, confirm with your second step: a code from your authenticator app, a recovery code, or a passkey."
    : "For your security, enter your password to continue.";
  $("stepup-password-field").hidden = withCode;
  $("stepup-code-field").hidden = !withCode;
  $("stepup-password").required = !withCode;
  $("stepup-code").required = withCode;
  $("stepup-username").value = me?.email ?? "";
  $("stepup-passkey").hidden = !(PASSKEYS && withCode && hasPasskeys);
  dialog.showModal();
  (withCode ? $("stepup-code") : $("stepup-password")).focus();
  return new Promise((resolve) => {
    confirming = resolve;
  });
}

function confirmed(ok) {
  $("stepup-dialog").close();
  confirming?.(ok);
  confirming = null;
}

handle("stepup-form", "stepup-error", async (data) => {
  const code = (data.get("code") ?? "").trim();
  const proof = !$("stepup-code-field").hidden
    ? (/^[0-9]{6}$/.test(code.replaceAll(" ", "")) ? { totp: code } : { recovery_code: code })
    : { password: data.get("password") };
  await auth.reauthenticate(proof);
  confirmed(true);
});
$("stepup-passkey").addEventListener("click", () => passkeyStep("stepup-error", async () => {
  await auth.reauthenticateWithPasskey(me.email);
  confirmed(true);
}));
$("stepup-cancel").addEventListener("click", () => confirmed(false));
$("stepup-dialog").addEventListener("cancel", () => confirmed(false));

handle("signup-form", "signup-error", async (data) => {
  await auth.signUp(data.get("email"), data.get("password"), data.get("name") || undefined);
  await auth.signIn(data.get("email"), data.get("password"));
  $("signup-form").reset();
});

handle("password-form", "password-error", async (data) => {
  await sensitive(() => auth.changePassword(data.get("current_password"), data.get("new_password")));
  $("password-form").reset();
  notify("Password changed. Your other devices were signed out.");
  await loadAccount();
});

handle("forgot-form", "forgot-error", async (data) => {
  await auth.requestPasswordReset(data.get("email"));
  const notice = $("forgot-notice");
  notice.textContent = `If ${data.get("email")} belongs to an account, a link to reset its password is on its way.`;
  notice.hidden = false;
  $("forgot-form").reset();
});

handle("reset-form", "reset-error", async (data) => {
  if (!link?.token) throw new ApiError(400, { message: `${INVALID_LINK}. Ask for a new one below.` });
  try {
    await auth.resetPassword(link.token, data.get("new_password"));
  } catch (error) {
    if (error instanceof ApiError && error.message === INVALID_LINK) link = null;
    throw error;
  }
  link = null;
  location.replace("/signin?reason=password_reset");
});

handle("verify-form", "verify-error", async (data) => {
  await auth.email.requestVerification(data.get("email"));
  $("verify-notice").textContent = `If ${data.get("email")} needs it, a new link is on its way.`;
  $("verify-notice").classList.remove("warning");
  $("verify-form").reset();
});

handle("email-form", "email-error", async (data) => {
  await sensitive(() => auth.email.change(data.get("new_email"), data.get("password")));
  notify(`We sent a link to ${data.get("new_email")}. Your address changes once you open it.`);
  $("email-form").reset();
});

$("verify-resend").addEventListener("click", async () => {
  const button = $("verify-resend");
  button.disabled = true;
  try {
    await auth.email.requestVerification(me.email);
    notify(`A new link is on its way to ${me.email}.`);
  } catch (error) {
    notify(error.message);
  } finally {
    button.disabled = false;
  }
});

handle("delete-form", "delete-error", async (data) => {
  await sensitive(() => auth.deleteAccount(data.get("password")));
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
    const revoked = await sensitive(() => auth.sessions.revokeOthers());
    notify(revoked === 1 ? "Signed out of 1 other device." : `Signed out of ${revoked} other devices.`);
    await loadAccount();
  } catch (error) {
    if (!(error instanceof SignedOutError)) notify(error.message);
    button.disabled = false;
  }
});

// ---------------------------------------------------------------- two-step verification card

let mfaCodesShown = false;

function mfaView(name) {
  for (const part of ["off", "setup", "codes", "on"]) $(`mfa-${part}`).hidden = part !== name;
}

function renderMfa(status) {
  const on = status.factors.includes("totp");
  $("mfa-state").textContent = on ? "On" : "Off";
  $("mfa-state").classList.toggle("off", !on);
  if (mfaCodesShown || !$("mfa-setup").hidden) return;  // the user is in the middle of it
  const left = status.recovery_codes_left;
  $("mfa-left").textContent = left === 1 ? "1 recovery code left." : `${left} recovery codes left.`;
  mfaView(on ? "on" : "off");
}

function showCodes(codes) {
  mfaCodesShown = true;
  $("mfa-code-list").replaceChildren(...codes.map((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    return item;
  }));
  const text = `sessionward recovery codes for ${me?.email ?? "your account"}\n\n${codes.join("\n")}\n`;
  const download = $("mfa-download");
  if (download.href.startsWith("blob:")) URL.revokeObjectURL(download.href);
  download.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  $("mfa-copy").onclick = async () => {
    await navigator.clipboard?.writeText(text).then(() => notify("Recovery codes copied."), () => {});
  };
  mfaView("codes");
  $("mfa-copy").focus();
}

async function mfaAction(button, work) {
  button.disabled = true;
  formError("mfa-error", null);
  try {
    await work();
  } catch (error) {
    if (error instanceof SignedOutError) return;
    notify(error.message);
  } finally {
    button.disabled = false;
  }
}

$("mfa-start").addEventListener("click", () => mfaAction($("mfa-start"), async () => {
  const enrolment = await sensitive(() => auth.mfa.startTotp());
  $("mfa-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(enrolment.qr_svg)}`;
  $("mfa-secret").textContent = enrolment.secret.match(/.{1,4}/g).join(" ");
  $("mfa-confirm-form").reset();
  formError("mfa-confirm-error", null);
  mfaView("setup");
  $("mfa-code").focus();
}));

handle("mfa-confirm-form", "mfa-confirm-error", async (data) => {
  const codes = await auth.mfa.confirmTotp(data.get("code").trim());
  $("mfa-secret").textContent = "";
  $("mfa-qr").removeAttribute("src");
  showCodes(codes);
  await loadAccount();
});

$("mfa-cancel").addEventListener("click", () => {
  $("mfa-secret").textContent = "";
  $("mfa-qr").removeAttribute("src");
  mfaView("off");
});

$("mfa-codes-done").addEventListener("click", async () => {
  mfaCodesShown = false;
  $("mfa-code-list").replaceChildren();
  await loadAccount().catch(() => {});
  $("mfa-title").focus();
});

$("mfa-new-codes").addEventListener("click", () => mfaAction($("mfa-new-codes"), async () => {
  showCodes(await sensitive(() => auth.mfa.newRecoveryCodes()));
}));

$("mfa-remove").addEventListener("click", () => mfaAction($("mfa-remove"), async () => {
  await sensitive(() => auth.mfa.removeTotp());
  notify("Two-step verification is off. Signing in now takes only your password.");
  await loadAccount();
}));

// ---------------------------------------------------------------- passkeys card

let hasPasskeys = false;

function renderPasskeys(list) {
  hasPasskeys = list.length > 0;
  $("passkey-add").hidden = !PASSKEYS;
  const items = list.map((passkey) => {
    const item = $("passkey-template").content.firstElementChild.cloneNode(true);
    item.dataset.passkey = String(passkey.id);
    const input = item.querySelector(".passkey-name");
    input.value = passkey.name;
    input.id = `passkey-${passkey.id}`;
    item.querySelector("label").htmlFor = input.id;
    const used = passkey.last_used_at ? `last used ${ago(passkey.last_used_at)}` : "not used yet";
    item.querySelector(".passkey-meta").textContent = `Added ${ago(passkey.created_at)} · ${used}`;
    item.querySelector(".passkey-form").addEventListener("submit", (event) => {
      event.preventDefault();
      passkeyStep("passkeys-error", async () => {
        const renamed = await auth.passkeys.rename(passkey.id, input.value.trim());
        passkey.name = renamed.name;
        notify(`Passkey renamed to ${renamed.name}.`);
      });
    });
    item.querySelector(".passkey-remove").addEventListener("click", () => passkeyStep("passkeys-error", async () => {
      await sensitive(() => auth.passkeys.remove(passkey.id));
      notify(`Removed the passkey ${passkey.name}.`);
      await loadAccount();
    }));
    return item;
  });
  $("passkeys").replaceChildren(...(items.length ? items : [empty("No passkeys yet.")]));
}

$("passkey-add").addEventListener("click", () => passkeyStep("passkeys-error", async () => {
  const passkey = await sensitive(() => auth.passkeys.register());
  notify(`Added the passkey ${passkey.name}.`);
  await loadAccount();
}));

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

/** How the session was signed in, in words (its `amr`, RFC 8176). */
function strengthLabel(session) {
  const amr = session.amr ?? [];
  const passkey = amr.includes("hwk") || amr.includes("swk");
  if (passkey && amr.includes("pwd")) return "Password and passkey";
  if (passkey) return amr.includes("mfa") ? "Passkey" : "Passkey (one factor)";
  if (amr.includes("otp")) return "Password and code";
  if (amr.includes("pwd")) return "Password only";
  return "Signed in by an app";
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
  item.querySelector(".device-strength").textContent = strengthLabel(session);
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
  email_verified: ["user", "Email address verified"],
  password_reset_requested: ["key", "Password reset link requested"],
  password_reset: ["key", "Password reset: every device was signed out", "warn"],
  email_change_requested: ["user", "Email change requested"],
  email_changed: ["user", "Email address changed"],
  user_imported: ["user", "Account imported"],
  session_issued: ["signin", "Signed in by an app"],
  mfa_enrolled: ["key", "Two-step verification turned on"],
  mfa_removed: ["key", "Two-step verification turned off", "warn"],
  mfa_failed: ["alert", "Wrong two-step verification code", "warn"],
  recovery_code_used: ["key", "A recovery code was used", "warn"],
  recovery_codes_regenerated: ["key", "New recovery codes made (the old ones stopped working)"],
  step_up: ["key", "Confirmed it was you"],
  passkey_added: ["key", "Passkey added"],
  passkey_removed: ["key", "Passkey removed", "warn"],
  passkey_login: ["signin", "New sign-in with a passkey"],
  passkey_clone_suspected: ["alert", "A copied passkey was refused", "danger"],
};

function eventTitle(event) {
  const [, title] = EVENTS[event.type] ?? ["alert", event.type.replaceAll("_", " ")];
  const details = event.details ?? {};
  if (event.type === "sessions_revoked" && Number.isInteger(details.revoked)) {
    const count = details.revoked === 1 ? "1 other device" : `${details.revoked} other devices`;
    return details.by_admin ? `An administrator signed out ${details.revoked} devices` : `Signed out of ${count}`;
  }
  if (event.type === "logout" && details.all) return "Signed out everywhere";
  if (event.type === "email_changed" && details.new) return `Email address changed to ${details.new}`;
  if (event.type === "email_change_requested" && details.new) return `Email change to ${details.new} requested`;
  if (event.type === "recovery_code_used" && Number.isInteger(details.left)) {
    return `A recovery code was used (${details.left} left)`;
  }
  if (event.type === "login_succeeded" && details.mfa) return "New sign-in with two-step verification";
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
  const [sessions, events, mfa, passkeys] = await Promise.all([
    auth.sessions.list(),
    auth.events.list({ limit: 10 }),
    auth.mfa.status(),
    auth.passkeys.list(),
  ]);
  renderMfa(mfa);
  renderPasskeys(passkeys);
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
    $("email-current").textContent = me.email;
    $("email-state").textContent = me.email_verified_at ? "Verified" : "Not verified";
    $("email-state").classList.toggle("warn", !me.email_verified_at);
    $("verify-banner").hidden = Boolean(me.email_verified_at);
    $("verify-banner-email").textContent = me.email;
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
