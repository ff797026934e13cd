// src/errors.ts
var SignedOutError = class extends Error {
  reason;
  constructor(reason) {
    super(`signed out (${reason})`);
    this.name = "SignedOutError";
    this.reason = reason;
  }
};
var ApiError = class extends Error {
  status;
  errors;
  /** A machine-readable code when the service gives one, such as "step_up_required". */
  code;
  /** With "step_up_required": the level `reauthenticate` must reach ("aal2": a second factor, not the password). */
  aal;
  constructor(status, body) {
    const envelope = typeof body === "object" && body !== null ? body : {};
    super(typeof envelope.message === "string" ? envelope.message : `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.errors = Array.isArray(envelope.errors) ? envelope.errors : [];
    this.code = typeof envelope.code === "string" ? envelope.code : null;
    this.aal = envelope.aal === "aal1" || envelope.aal === "aal2" ? envelope.aal : null;
  }
};

// src/storage.ts
function memoryStorage() {
  const items = /* @__PURE__ */ new Map();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key)
  };
}

// src/tabs.ts
var PEER_WAIT_MS = 400;
var PRESENCE = "-tab-";
var Tabs = class {
  channel;
  locks;
  lockName;
  tabName;
  offers = /* @__PURE__ */ new Set();
  present = false;
  constructor(name, enabled, onMessage) {
    const locks = globalThis.navigator?.locks;
    this.channel = enabled && typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
    this.locks = enabled && locks !== void 0 ? locks : null;
    this.lockName = name;
    this.tabName = name + PRESENCE + Math.random().toString(36).slice(2);
    this.channel?.addEventListener("message", (event) => {
      if (event.data?.type === "token") this.offer(event.data);
      onMessage(event.data);
    });
  }
  post(message) {
    this.channel?.postMessage(message);
  }
  /** Runs `work` holding the refresh lock; `waited` says another tab held it first (and may have refreshed). */
  async withLock(work) {
    if (this.locks === null) return work(false);
    const busy = Symbol("busy");
    const first = await this.locks.request(
      this.lockName,
      { ifAvailable: true },
      (lock) => lock ? work(false) : busy
    );
    if (first !== busy) return first;
    return this.locks.request(this.lockName, () => work(true));
  }
  /** A tab that holds a token says so with a lock it never releases (the browser releases it with the tab). */
  announcePresence() {
    if (this.present || this.locks === null) return;
    this.present = true;
    this.locks.request(this.tabName, () => new Promise(() => {
    })).catch(() => {
    });
  }
  async othersPresent() {
    if (this.locks === null) return this.channel !== null;
    const { held = [] } = await this.locks.query();
    const prefix = this.lockName + PRESENCE;
    return held.some((lock) => lock.name?.startsWith(prefix) === true && lock.name !== this.tabName);
  }
  /** Asks the other tabs for an access token newer than `stale`; null when none answers in time. */
  askPeers(stale, usable2) {
    if (this.channel === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const take = (access) => {
        if (access !== null && (access.token === stale || !usable2(access))) return false;
        clearTimeout(wait);
        this.offers.delete(take);
        resolve(access);
        return true;
      };
      const wait = setTimeout(() => take(null), PEER_WAIT_MS);
      this.offers.add(take);
      this.post({ type: "need", stale });
    });
  }
  offer(message) {
    const access = { token: message.token, expiresAt: message.expiresAt, lifetime: message.lifetime };
    for (const take of [...this.offers]) take(access);
  }
};

// src/client.ts
var API = "/api/v1/auth";
var WEB = { "X-Sessionward-Client": "web" };
var JSON_TYPE = { "Content-Type": "application/json", Accept: "application/json" };
var MAX_TIMER = 2 ** 31 - 1;
var MAX_RETRY_MS = 6e4;
var inBrowser = () => typeof document !== "undefined";
function usable(access) {
  return access.expiresAt - Date.now() > Math.min(6e4, access.lifetime / 4);
}
function fromAnswer(data) {
  const lifetime = data.expires_in * 1e3;
  return { token: data.token, expiresAt: Date.now() + lifetime, lifetime };
}
function later(work, ms) {
  const timer = setTimeout(work, Math.min(MAX_TIMER, Math.max(0, ms)));
  timer.unref?.();
  return timer;
}
async function parse(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body ?? {};
}
var Client = class {
  mode;
  base;
  storage;
  storageKey;
  fetcher;
  tabs;
  listeners = /* @__PURE__ */ new Set();
  current = null;
  pending = null;
  timer;
  retryDelay = 0;
  everSignedIn = false;
  // in this context's life: a refused refresh then means "revoked"
  constructor(options) {
    this.base = options.url.replace(/\/+$/, "") + API;
    this.mode = options.mode ?? (inBrowser() ? "cookie" : "body");
    this.storage = options.storage ?? memoryStorage();
    this.storageKey = options.storageKey ?? "sessionward";
    this.fetcher = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const crossTab = options.crossTab ?? (inBrowser() && typeof BroadcastChannel === "function");
    this.tabs = new Tabs(`sessionward:${this.base}`, crossTab, (message) => this.onTabMessage(message));
    if (inBrowser()) document.addEventListener("visibilitychange", () => this.onVisible());
  }
  // ------------------------------------------------------------ state and events
  /** Calls `listener` on `signed_in`, `token_refreshed`, `signed_out` (with a reason) and `refresh_failed`
   * (offline, 429, 5xx: the session is kept and the refresh retried with backoff). Returns an unsubscribe. */
  onAuthStateChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** Whether this context holds an access token (in cookie mode, known after the first refresh). */
  get signedIn() {
    return this.current !== null;
  }
  emit(event, detail = {}) {
    for (const listener of [...this.listeners]) listener(event, detail);
  }
  adopt(access, share) {
    const wasSignedIn = this.current !== null;
    this.current = access;
    this.everSignedIn = true;
    this.retryDelay = 0;
    this.schedule(access);
    this.tabs.announcePresence();
    if (share) this.tabs.post({ type: "token", ...access });
    this.emit(wasSignedIn ? "token_refreshed" : "signed_in");
  }
  /** Forgets the session here; `share` tells the other tabs. Emits `signed_out` once per session. */
  end(reason, share) {
    const wasSignedIn = this.current !== null;
    this.current = null;
    clearTimeout(this.timer);
    if (share) this.tabs.post({ type: "signed_out", reason });
    if (wasSignedIn) this.emit("signed_out", { reason });
    return new SignedOutError(reason);
  }
  schedule(access) {
    clearTimeout(this.timer);
    const due = access.expiresAt - Math.min(6e4, access.lifetime / 4) - Date.now();
    this.timer = later(() => this.refresh(access.token).catch(() => {
    }), due);
  }
  retryLater() {
    this.retryDelay = Math.min(MAX_RETRY_MS, this.retryDelay ? this.retryDelay * 2 : 2e3);
    clearTimeout(this.timer);
    const stale = this.current?.token ?? null;
    this.timer = later(() => this.refresh(stale).catch(() => {
    }), this.retryDelay);
    this.emit("refresh_failed");
  }
  onTabMessage(message) {
    if (message.type === "token") {
      const access = { token: message.token, expiresAt: message.expiresAt, lifetime: message.lifetime };
      if (this.current === null || access.expiresAt > this.current.expiresAt) this.adopt(access, false);
    } else if (message.type === "need") {
      const current = this.current;
      if (current !== null && usable(current) && current.token !== message.stale) this.tabs.post({ type: "token", ...current });
    } else if (message.type === "signed_out") {
      this.end(message.reason, false);
    }
  }
  // A tab coming back from the background (or a laptop waking up) may have slept through its timer.
  onVisible() {
    if (document.visibilityState === "visible" && this.current !== null && !usable(this.current)) {
      this.refresh(this.current.token).catch(() => {
      });
    }
  }
  // ------------------------------------------------------------ tokens
  /** The current access token, refreshed first when it expires within a minute. Rejects with a
   * `SignedOutError` when there is no session. */
  async getAccessToken() {
    const current = this.current;
    return current !== null && usable(current) ? current.token : (await this.refresh(current?.token ?? null)).token;
  }
  /**
   * An access token newer than `stale` (the one that just failed or is about to expire), with one /refresh at a
   * time in this context and among tabs: whoever holds the lock refreshes; a tab that waited for it takes the
   * token the holder broadcast instead of refreshing again.
   */
  refresh(stale = null) {
    this.pending ??= this.tabs.withLock(async (waited) => {
      const current = this.current;
      if (current !== null && usable(current) && current.token !== stale) return current;
      if (waited || current === null && await this.tabs.othersPresent()) {
        const shared = await this.tabs.askPeers(stale, usable);
        if (shared !== null) {
          this.adopt(shared, false);
          return shared;
        }
      }
      return this.callRefresh();
    }).finally(() => {
      this.pending = null;
    });
    return this.pending;
  }
  async callRefresh() {
    const stored = this.mode === "body" ? await this.load() : null;
    if (this.mode === "body" && stored === null) throw new SignedOutError(this.everSignedIn ? "revoked" : "none");
    let response;
    try {
      response = await this.send("/refresh", stored === null ? { method: "POST" } : { method: "POST", json: stored });
    } catch (error) {
      this.retryLater();
      throw error;
    }
    if (response.status === 401) return this.refused(stored !== null);
    let body;
    try {
      body = await parse(response);
    } catch (error) {
      this.retryLater();
      throw error;
    }
    if (stored !== null) await this.save({ refresh_token: body.data.refresh.token, session_id: stored.session_id });
    const access = fromAnswer(body.data.access);
    this.adopt(access, true);
    return access;
  }
  /** A refused refresh ends the session everywhere, unless there never was one in this context. */
  async refused(hadStored) {
    if (this.mode === "body") await this.storage.removeItem(this.storageKey);
    if (!this.everSignedIn && !hadStored) throw new SignedOutError("none");
    throw this.end("revoked", true);
  }
  async load() {
    const text = await this.storage.getItem(this.storageKey);
    if (text === null) return null;
    try {
      const value = JSON.parse(text);
      return typeof value.refresh_token === "string" && typeof value.session_id === "string" ? { refresh_token: value.refresh_token, session_id: value.session_id } : null;
    } catch {
      return null;
    }
  }
  async save(stored) {
    await this.storage.setItem(this.storageKey, JSON.stringify(stored));
  }
  // ------------------------------------------------------------ requests
  send(path, { method = "GET", json, token }) {
    const headers = { Accept: "application/json" };
    if (this.mode === "cookie") Object.assign(headers, WEB);
    if (json !== void 0) Object.assign(headers, JSON_TYPE);
    if (token !== void 0) headers.Authorization = `Bearer ${token}`;
    const body = json === void 0 ? null : JSON.stringify(json);
    const credentials = this.mode === "cookie" ? "include" : "omit";
    return this.fetcher(this.base + path, { method, headers, body, credentials });
  }
  /** `fetch` with the bearer token; on a 401 it refreshes (once among tabs) and retries once. */
  async fetch(input, init = {}) {
    const retry = typeof Request === "function" && input instanceof Request ? input.clone() : input;
    const token = await this.getAccessToken();
    const response = await this.fetcher(input, withBearer(input, init, token));
    if (response.status !== 401) return response;
    const fresh = await this.refresh(token);
    return this.fetcher(retry, withBearer(retry, init, fresh.token));
  }
  /** A call to this service as the signed-in user; a 401 after a refresh means the session is over. */
  async api(path, call = {}) {
    const token = await this.getAccessToken();
    let response = await this.send(path, { ...call, token });
    if (response.status === 401) {
      response = await this.send(path, { ...call, token: (await this.refresh(token)).token });
      if (response.status === 401) throw this.end("revoked", true);
    }
    return parse(response);
  }
  // ------------------------------------------------------------ account
  async signUp(email, password, name) {
    const json = { email, password, ...name ? { name } : {} };
    return (await parse(await this.send("/register", { method: "POST", json }))).data.user;
  }
  /** Signs in, or answers `mfaRequired` with the challenge to pass to `signInMfa`. */
  async signIn(email, password) {
    return this.signedInWith("/login", { email, password });
  }
  /** The second step of a sign-in that answered `mfaRequired`: a TOTP code, a recovery code or a passkey. */
  async signInMfa(challenge, factor) {
    return this.signedInWith("/login/mfa", { challenge, ...factor });
  }
  /** Sign-in with a passkey. `getCredential` turns the service's request options into the assertion's JSON;
   * the default uses the browser's WebAuthn (React Native passes its own). */
  async signInWithPasskey(options = {}) {
    const json = options.email === void 0 ? {} : { email: options.email };
    const requestOptions = (await parse(await this.send("/passkeys/login/options", { method: "POST", json }))).data;
    const credential = await (options.getCredential ?? browserAssertion)(requestOptions);
    return this.signedInWith("/passkeys/login", credential);
  }
  async signedInWith(path, json) {
    const { data } = await parse(await this.send(path, { method: "POST", json }));
    if (data.mfa_required === true) {
      const { challenge, factors, passkey_options: passkeyOptions } = data;
      return { mfaRequired: true, challenge, factors, ...passkeyOptions ? { passkeyOptions } : {} };
    }
    if (this.mode === "body") {
      await this.save({ refresh_token: data.tokens.refresh.token, session_id: data.session.id });
    }
    this.adopt(fromAnswer(data.tokens.access), true);
    return { mfaRequired: false, user: data.user, session: data.session };
  }
  /** Signs out here (the service clears the cookies), or everywhere with `all`; every tab follows. */
  async signOut({ all = false } = {}) {
    try {
      await this.api("/logout", { method: "POST", json: all ? { logout_all: true } : {} });
    } catch (error) {
      if (!(error instanceof SignedOutError)) throw error;
    }
    if (this.mode === "body") await this.storage.removeItem(this.storageKey);
    this.end("signed_out", true);
  }
  /** Confirm it's you, after a call failed with an `ApiError` whose `code` is "step_up_required": with the password,
   * or (when the error's `aal` is "aal2") a second factor. The session's sign-in becomes recent; try the call again. */
  async reauthenticate(proof) {
    const { data } = await this.api("/reauthenticate", { method: "POST", json: proof });
    this.adopt(fromAnswer(data.access), true);
  }
  /** `reauthenticate` with one of the account's passkeys (`email`: the signed-in user's address). */
  async reauthenticateWithPasskey(email, getCredential = browserAssertion) {
    const options = (await parse(await this.send("/passkeys/login/options", { method: "POST", json: { email } }))).data;
    await this.reauthenticate({ passkey: await getCredential(options) });
  }
  passkeys = {
    /** The account's passkeys. */
    list: async () => (await this.api("/passkeys")).data.passkeys,
    /** Makes a passkey (the default uses the browser's WebAuthn; React Native passes its own `createCredential`). */
    register: async ({ name, createCredential = browserAttestation } = {}) => {
      const options = (await this.api("/passkeys/register/options", { method: "POST" })).data;
      const credential = await createCredential(options);
      const json = name === void 0 ? credential : { ...credential, name };
      return (await this.api("/passkeys/register", { method: "POST", json })).data.passkey;
    },
    rename: async (id, name) => (await this.api(`/passkeys/${id}`, { method: "PATCH", json: { name } })).data.passkey,
    remove: async (id) => {
      await this.api(`/passkeys/${id}`, { method: "DELETE" });
    }
  };
  mfa = {
    /** The confirmed second factors and how many recovery codes are left. */
    status: async () => (await this.api("/mfa")).data,
    /** A new authenticator secret, its otpauth:// URI and QR code (SVG); on once `confirmTotp` gets a code. */
    startTotp: async () => (await this.api("/mfa/totp", { method: "POST" })).data,
    /** Turns two-step verification on with a first code; answers the recovery codes (shown once). */
    confirmTotp: async (code) => {
      const { data } = await this.api("/mfa/totp/confirm", { method: "POST", json: { code } });
      this.adopt(fromAnswer(data.access), true);
      return data.recovery_codes;
    },
    removeTotp: async () => {
      await this.api("/mfa/totp", { method: "DELETE" });
    },
    /** A new set of recovery codes; the old ones stop working. */
    newRecoveryCodes: async () => (await this.api("/mfa/recovery-codes", { method: "POST" })).data.recovery_codes
  };
  async getUser() {
    return (await this.api("/me")).data.user;
  }
  /** Changes the password; the service signs out every other session. */
  async changePassword(currentPassword, newPassword) {
    await this.api("/password", {
      method: "POST",
      json: { current_password: currentPassword, new_password: newPassword }
    });
  }
  // ------------------------------------------------------------ account email
  /** Asks for a password-reset link; the service answers the same whether or not the address has an account. */
  async requestPasswordReset(email) {
    await parse(await this.send("/password/forgot", { method: "POST", json: { email } }));
  }
  /** Sets a new password with the token of a reset link (its fragment); every session of the account ends. */
  async resetPassword(token, newPassword) {
    await parse(await this.send("/password/reset", { method: "POST", json: { token, new_password: newPassword } }));
  }
  email = {
    /** Asks for a verification link (no sign-in needed); the same answer for any address. */
    requestVerification: async (email) => {
      await parse(await this.send("/email/verification", { method: "POST", json: { email } }));
    },
    /** Verifies the address with the token of a verification link. */
    verify: async (token) => (await parse(await this.send("/email/verify", { method: "POST", json: { token } }))).data.user,
    /** Sends a confirmation to the new address (and a notice to the old one); nothing changes until confirmed. */
    change: async (newEmail, password) => {
      await this.api("/email/change", { method: "POST", json: { new_email: newEmail, password } });
    },
    /** Confirms an address change with the token of the link sent to the new address. */
    confirmChange: async (token) => (await parse(await this.send("/email/change/confirm", { method: "POST", json: { token } }))).data.user
  };
  async deleteAccount(password) {
    await this.api("/me", { method: "DELETE", json: { password } });
    if (this.mode === "body") await this.storage.removeItem(this.storageKey);
    this.end("deleted", true);
  }
  sessions = {
    /** The caller's active sessions: this one and the others, most recently active first. */
    list: async () => (await this.api("/sessions")).data,
    revoke: async (sessionId) => {
      await this.api(`/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE" });
    },
    /** Signs out every other session; answers how many. */
    revokeOthers: async () => (await this.api("/sessions", { method: "DELETE" })).data.revoked
  };
  events = {
    /** The caller's security events, newest first; `before` is an event id (pagination). */
    list: async ({ limit, before } = {}) => {
      const query = new URLSearchParams();
      if (limit !== void 0) query.set("limit", String(limit));
      if (before !== void 0) query.set("before", String(before));
      const suffix = query.toString() ? `?${query}` : "";
      return (await this.api(`/events${suffix}`)).data.events;
    }
  };
};
function withBearer(input, init, token) {
  const given = init.headers ?? (typeof Request === "function" && input instanceof Request ? input.headers : {});
  const headers = new Headers(given);
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}
async function browserAttestation(creationOptions) {
  const webauthn = globalThis.PublicKeyCredential;
  if (webauthn?.parseCreationOptionsFromJSON === void 0) throw new Error("This browser cannot make passkeys");
  const publicKey = webauthn.parseCreationOptionsFromJSON(creationOptions);
  const credential = await navigator.credentials.create({ publicKey });
  if (credential === null) throw new Error("No passkey was made");
  return credential.toJSON();
}
async function browserAssertion(requestOptions) {
  const webauthn = globalThis.PublicKeyCredential;
  if (webauthn?.parseRequestOptionsFromJSON === void 0) throw new Error("This browser cannot use passkeys");
  const publicKey = webauthn.parseRequestOptionsFromJSON(requestOptions);
  const credential = await navigator.credentials.get({ publicKey });
  if (credential === null) throw new Error("No passkey was chosen");
  return credential.toJSON();
}

// src/index.ts
function createClient(options) {
  return new Client(options);
}
export {
  ApiError,
  Client,
  SignedOutError,
  browserAssertion,
  createClient,
  memoryStorage
};
