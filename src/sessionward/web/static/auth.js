// Tokens in the browser, per OWASP's session cheat sheet and the IETF's browser-based apps BCP:
// - the refresh token (and its session id) live only in HttpOnly, SameSite=Strict cookies scoped to
//   /api/v1/auth/refresh: this code never sees them;
// - the access token lives in this module's memory only (never localStorage, sessionStorage or a cookie);
// - refreshes are single-flight across tabs: a Web Lock serialises them and a BroadcastChannel hands the new
//   access token to the other tabs, so N open tabs cause one /refresh, never a logout;
// - a 401 from /refresh means the session is over: every tab goes to the sign-in page with a message.

const API = "/api/v1/auth";
const CLIENT = { "X-Sessionward-Client": "web" };
const LOCK = "sessionward-refresh";
const PRESENCE = "sessionward-tab-";
const MAX_TIMER = 2 ** 31 - 1;
const PEER_WAIT_MS = 400;

const tabId = crypto.randomUUID();
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("sessionward") : null;
const locks = globalThis.navigator?.locks ?? null;

let current = null; // { token, expiresAt, lifetime } with times in ms
let pending = null; // this tab's refresh in flight
let timer = 0;
let retryDelay = 0;
let present = false;
let everSignedIn = false; // in this tab's life: a 401 then means "revoked", not "never signed in"
const peers = new Set(); // offers of a token to askPeers(): true when taken
const handlers = { signedOut: () => {}, signedIn: () => {}, trouble: () => {} };

/** The session ended (revoked, expired, signed out): `reason` is one of revoked, signed-out, deleted. */
export class SignedOut extends Error {
  constructor(reason) {
    super(`signed out (${reason})`);
    this.reason = reason;
  }
}

/** A refused or failed API call; `message` is the service's sentence, safe to show. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `Request failed (${status})`);
    this.status = status;
    this.errors = body?.errors ?? [];
  }
}

export function on(event, handler) {
  handlers[event] = handler;
}

function margin(access) {
  // Refresh a minute before expiry, or a quarter of the lifetime for short-lived tokens.
  return Math.min(60_000, access.lifetime / 4);
}

function fresh(access) {
  return access !== null && access.expiresAt - Date.now() > margin(access);
}

function post(message) {
  channel?.postMessage(message);
}

function adopt(access, { share }) {
  current = access;
  everSignedIn = true;
  retryDelay = 0;
  schedule();
  announcePresence();
  if (share) post({ type: "token", ...access });
}

function fromResponse(data) {
  const lifetime = data.expires_in * 1000;
  return { token: data.token, expiresAt: Date.now() + lifetime, lifetime };
}

function schedule() {
  clearTimeout(timer);
  if (current === null) return;
  const due = Math.min(MAX_TIMER, Math.max(0, current.expiresAt - margin(current) - Date.now()));
  const scheduledFor = current.token;
  timer = setTimeout(() => refresh(scheduledFor).catch(() => {}), due);
}

function retryLater() {
  // 429, 503, offline: the session is fine, so try again with backoff instead of signing anyone out.
  retryDelay = Math.min(60_000, retryDelay ? retryDelay * 2 : 2_000);
  clearTimeout(timer);
  const stale = current?.token ?? null;
  timer = setTimeout(() => refresh(stale).catch(() => {}), retryDelay);
}

// A tab that holds an access token says so with a lock it never releases (released when the tab closes):
// a new tab asks its peers for a token only when there are any.
function announcePresence() {
  if (present || locks === null) return;
  present = true;
  locks.request(PRESENCE + tabId, () => new Promise(() => {})).catch(() => {});
}

async function othersPresent() {
  if (locks === null) return channel !== null;
  const { held } = await locks.query();
  return held.some((lock) => lock.name.startsWith(PRESENCE) && lock.name !== PRESENCE + tabId);
}

function askPeers(stale) {
  if (channel === null) return Promise.resolve(null);
  return new Promise((resolve) => {
    const done = (access) => {
      if (access !== null && (access.token === stale || !fresh(access))) return false;
      clearTimeout(wait);
      peers.delete(done);
      resolve(access);
      return true;
    };
    const wait = setTimeout(() => done(null), PEER_WAIT_MS);
    peers.add(done);
    post({ type: "need", stale });
  });
}

async function withLock(work) {
  if (locks === null) return work(false);
  const busy = Symbol("busy");
  const result = await locks.request(LOCK, { ifAvailable: true }, (lock) => (lock ? work(false) : busy));
  if (result !== busy) return result;
  return locks.request(LOCK, () => work(true));
}

async function callRefresh() {
  let response;
  try {
    response = await fetch(`${API}/refresh`, { method: "POST", headers: CLIENT, credentials: "same-origin" });
  } catch (error) {
    retryLater();
    handlers.trouble(true);
    throw error;
  }
  if (response.status === 401) {
    // A first visit without a session is no news for the other tabs; a session that ended is.
    if (!everSignedIn) throw new SignedOut("none");
    throw endEverywhere("revoked");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    retryLater();
    handlers.trouble(true);
    throw new ApiError(response.status, body);
  }
  handlers.trouble(false);
  adopt(fromResponse(body.data.access), { share: true });
  return current;
}

/**
 * An access token newer than `stale` (the one that just failed or is about to expire), with one /refresh
 * among all tabs: whoever holds the lock refreshes; a tab that waited for it takes the token that the holder
 * broadcast instead of refreshing again.
 */
export function refresh(stale = null) {
  pending ??= withLock(async (waited) => {
    if (current !== null && current.token !== stale && fresh(current)) return current;
    if (waited || (current === null && (await othersPresent()))) {
      const shared = await askPeers(stale);
      if (shared !== null) {
        adopt(shared, { share: false });
        return current;
      }
    }
    return callRefresh();
  }).finally(() => {
    pending = null;
  });
  return pending;
}

/** The current access token, refreshed first when it is about to expire. */
export async function accessToken() {
  return fresh(current) ? current : refresh(current?.token ?? null);
}

export function signedIn() {
  return current !== null;
}

function endEverywhere(reason) {
  end();
  post({ type: "signed-out", reason });
  handlers.signedOut(reason);
  return new SignedOut(reason);
}

function end() {
  current = null;
  clearTimeout(timer);
}

async function send(path, { method, json, token, web }) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}`, ...(web ? CLIENT : {}) };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const body = json === undefined ? undefined : JSON.stringify(json);
  return fetch(`${API}${path}`, { method, headers, body, credentials: "same-origin" });
}

/** An authenticated call: one refresh and one retry on a 401; a second 401 means the session is over. */
export async function api(path, { method = "GET", json, web = false } = {}) {
  let { token } = await accessToken();
  let response = await send(path, { method, json, token, web });
  if (response.status === 401) {
    ({ token } = await refresh(token));
    response = await send(path, { method, json, token, web });
    if (response.status === 401) throw endEverywhere("revoked");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function login(email, password) {
  const response = await fetch(`${API}/login`, {
    method: "POST",
    headers: { ...CLIENT, "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ email, password }),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  adopt(fromResponse(body.data.tokens.access), { share: true });
  return body.data;
}

export async function register(email, password, name) {
  const json = { email, password, ...(name ? { name } : {}) };
  const response = await fetch(`${API}/register`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(json),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body.data.user;
}

/** Sign out here (the server clears the cookies), or everywhere; every tab follows. */
export async function logout({ everywhere = false } = {}) {
  try {
    await api("/logout", { method: "POST", json: everywhere ? { logout_all: true } : {}, web: true });
  } catch (error) {
    if (!(error instanceof SignedOut)) throw error;
  }
  endEverywhere("signed-out");
}

export async function deleteAccount(password) {
  await api("/me", { method: "DELETE", json: { password }, web: true });
  endEverywhere("deleted");
}

channel?.addEventListener("message", ({ data }) => {
  if (data?.type === "token") {
    const access = { token: data.token, expiresAt: data.expiresAt, lifetime: data.lifetime };
    for (const offer of [...peers]) offer(access);
    const wasSignedIn = current !== null;
    if (current === null || access.expiresAt > current.expiresAt) adopt(access, { share: false });
    if (!wasSignedIn) handlers.signedIn();
  } else if (data?.type === "need") {
    if (current !== null && current.token !== data.stale && fresh(current)) post({ type: "token", ...current });
  } else if (data?.type === "signed-out") {
    const wasSignedIn = current !== null;
    end();
    if (wasSignedIn) handlers.signedOut(data.reason);
  }
});

// A tab coming back from the background (or a laptop waking up) may have slept through its timer.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && current !== null && !fresh(current)) {
    refresh(current.token).catch(() => {});
  }
});
