// The client: sign-in, a fresh access token on demand, fetch() that refreshes and retries once on a 401.
// Per OWASP's session cheat sheet and the IETF's browser-based apps BCP, the access token lives only in memory;
// in cookie mode the refresh token lives in HttpOnly cookies this code never sees, in body mode in `storage`.

import { ApiError, SignedOutError, type SignedOutReason } from "./errors.js";
import { memoryStorage, type KeyValueStorage } from "./storage.js";
import { Tabs, type Access, type TabMessage } from "./tabs.js";
import type {
  AuthEvent,
  CredentialJSON,
  MfaStatus,
  Mode,
  Passkey,
  SecondFactor,
  SecurityEvent,
  SessionList,
  SignInResult,
  TotpEnrolment,
  User,
} from "./types.js";

const API = "/api/v1/auth";
const WEB = { "X-Sessionward-Client": "web" };
const JSON_TYPE = { "Content-Type": "application/json", Accept: "application/json" };
const MAX_TIMER = 2 ** 31 - 1;
const MAX_RETRY_MS = 60_000;

export interface ClientOptions {
  /** The service's origin, e.g. "https://auth.example.com"; "" for the page's own origin. */
  url: string;
  /** Default: "cookie" where there is a `document` (browsers), else "body". */
  mode?: Mode;
  /** Body mode: where the refresh token and session id are kept. Default: memory. */
  storage?: KeyValueStorage;
  /** The key under which body mode stores them. Default: "sessionward". */
  storageKey?: string;
  /** Coordinate refreshes with the other tabs (Web Locks + BroadcastChannel). Default: in browsers. */
  crossTab?: boolean;
  /** The fetch to use. Default: the global one. */
  fetch?: typeof globalThis.fetch;
}

export type AuthListener = (event: AuthEvent, detail: { reason?: SignedOutReason }) => void;

interface Stored {
  refresh_token: string;
  session_id: string;
}

interface Call {
  method?: string;
  json?: unknown;
  token?: string;
}

type Json = Record<string, any>; // the service's JSON; each method gives what it returns its type

const inBrowser = (): boolean => typeof document !== "undefined";

/** Refresh a minute before expiry, or a quarter of the lifetime for short-lived tokens. */
function usable(access: Access): boolean {
  return access.expiresAt - Date.now() > Math.min(60_000, access.lifetime / 4);
}

function fromAnswer(data: { token: string; expires_in: number }): Access {
  const lifetime = data.expires_in * 1000;
  return { token: data.token, expiresAt: Date.now() + lifetime, lifetime };
}

function later(work: () => void, ms: number): ReturnType<typeof setTimeout> {
  const timer = setTimeout(work, Math.min(MAX_TIMER, Math.max(0, ms)));
  (timer as { unref?: () => void }).unref?.(); // Node: a pending refresh does not keep the process alive
  return timer;
}

async function parse(response: Response): Promise<Json> {
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return (body ?? {}) as Json;
}

export class Client {
  readonly mode: Mode;
  private readonly base: string;
  private readonly storage: KeyValueStorage;
  private readonly storageKey: string;
  private readonly fetcher: typeof globalThis.fetch;
  private readonly tabs: Tabs;
  private readonly listeners = new Set<AuthListener>();
  private current: Access | null = null;
  private pending: Promise<Access> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private retryDelay = 0;
  private everSignedIn = false; // in this context's life: a refused refresh then means "revoked"

  constructor(options: ClientOptions) {
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
  onAuthStateChange(listener: AuthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether this context holds an access token (in cookie mode, known after the first refresh). */
  get signedIn(): boolean {
    return this.current !== null;
  }

  private emit(event: AuthEvent, detail: { reason?: SignedOutReason } = {}): void {
    for (const listener of [...this.listeners]) listener(event, detail);
  }

  private adopt(access: Access, share: boolean): void {
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
  private end(reason: SignedOutReason, share: boolean): SignedOutError {
    const wasSignedIn = this.current !== null;
    this.current = null;
    clearTimeout(this.timer);
    if (share) this.tabs.post({ type: "signed_out", reason });
    if (wasSignedIn) this.emit("signed_out", { reason });
    return new SignedOutError(reason);
  }

  private schedule(access: Access): void {
    clearTimeout(this.timer);
    const due = access.expiresAt - Math.min(60_000, access.lifetime / 4) - Date.now();
    this.timer = later(() => this.refresh(access.token).catch(() => {}), due);
  }

  private retryLater(): void {
    // Offline, 429, 503: the session is fine, so try again with backoff instead of signing anyone out.
    this.retryDelay = Math.min(MAX_RETRY_MS, this.retryDelay ? this.retryDelay * 2 : 2_000);
    clearTimeout(this.timer);
    const stale = this.current?.token ?? null;
    this.timer = later(() => this.refresh(stale).catch(() => {}), this.retryDelay);
    this.emit("refresh_failed");
  }

  private onTabMessage(message: TabMessage): void {
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
  private onVisible(): void {
    if (document.visibilityState === "visible" && this.current !== null && !usable(this.current)) {
      this.refresh(this.current.token).catch(() => {});
    }
  }

  // ------------------------------------------------------------ tokens

  /** The current access token, refreshed first when it expires within a minute. Rejects with a
   * `SignedOutError` when there is no session. */
  async getAccessToken(): Promise<string> {
    const current = this.current;
    return current !== null && usable(current) ? current.token : (await this.refresh(current?.token ?? null)).token;
  }

  /**
   * An access token newer than `stale` (the one that just failed or is about to expire), with one /refresh at a
   * time in this context and among tabs: whoever holds the lock refreshes; a tab that waited for it takes the
   * token the holder broadcast instead of refreshing again.
   */
  refresh(stale: string | null = null): Promise<Access> {
    this.pending ??= this.tabs
      .withLock(async (waited) => {
        const current = this.current;
        if (current !== null && usable(current) && current.token !== stale) return current;
        if (waited || (current === null && (await this.tabs.othersPresent()))) {
          const shared = await this.tabs.askPeers(stale, usable);
          if (shared !== null) {
            this.adopt(shared, false);
            return shared;
          }
        }
        return this.callRefresh();
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }

  private async callRefresh(): Promise<Access> {
    const stored = this.mode === "body" ? await this.load() : null;
    if (this.mode === "body" && stored === null) throw new SignedOutError(this.everSignedIn ? "revoked" : "none");
    let response: Response;
    try {
      response = await this.send("/refresh", stored === null ? { method: "POST" } : { method: "POST", json: stored });
    } catch (error) {
      this.retryLater();
      throw error;
    }
    if (response.status === 401) return this.refused(stored !== null);
    let body: Json;
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
  private async refused(hadStored: boolean): Promise<never> {
    if (this.mode === "body") await this.storage.removeItem(this.storageKey);
    if (!this.everSignedIn && !hadStored) throw new SignedOutError("none");
    throw this.end("revoked", true);
  }

  private async load(): Promise<Stored | null> {
    const text = await this.storage.getItem(this.storageKey);
    if (text === null) return null;
    try {
      const value = JSON.parse(text) as Partial<Stored>;
      return typeof value.refresh_token === "string" && typeof value.session_id === "string"
        ? { refresh_token: value.refresh_token, session_id: value.session_id }
        : null;
    } catch {
      return null;
    }
  }

  private async save(stored: Stored): Promise<void> {
    await this.storage.setItem(this.storageKey, JSON.stringify(stored));
  }

  // ------------------------------------------------------------ requests

  private send(path: string, { method = "GET", json, token }: Call): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.mode === "cookie") Object.assign(headers, WEB);
    if (json !== undefined) Object.assign(headers, JSON_TYPE);
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    const body = json === undefined ? null : JSON.stringify(json);
    const credentials: RequestCredentials = this.mode === "cookie" ? "include" : "omit";
    return this.fetcher(this.base + path, { method, headers, body, credentials });
  }

  /** `fetch` with the bearer token; on a 401 it refreshes (once among tabs) and retries once. */
  async fetch(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    const retry = typeof Request === "function" && input instanceof Request ? input.clone() : input;
    const token = await this.getAccessToken();
    const response = await this.fetcher(input, withBearer(input, init, token));
    if (response.status !== 401) return response;
    const fresh = await this.refresh(token);
    return this.fetcher(retry, withBearer(retry, init, fresh.token));
  }

  /** A call to this service as the signed-in user; a 401 after a refresh means the session is over. */
  private async api(path: string, call: Call = {}): Promise<Json> {
    const token = await this.getAccessToken();
    let response = await this.send(path, { ...call, token });
    if (response.status === 401) {
      response = await this.send(path, { ...call, token: (await this.refresh(token)).token });
      if (response.status === 401) throw this.end("revoked", true);
    }
    return parse(response);
  }

  // ------------------------------------------------------------ account

  async signUp(email: string, password: string, name?: string): Promise<User> {
    const json = { email, password, ...(name ? { name } : {}) };
    return (await parse(await this.send("/register", { method: "POST", json }))).data.user as User;
  }

  /** Signs in, or answers `mfaRequired` with the challenge to pass to `signInMfa`. */
  async signIn(email: string, password: string): Promise<SignInResult> {
    return this.signedInWith("/login", { email, password });
  }

  /** The second step of a sign-in that answered `mfaRequired`: a TOTP code, a recovery code or a passkey. */
  async signInMfa(challenge: string, factor: SecondFactor): Promise<SignInResult> {
    return this.signedInWith("/login/mfa", { challenge, ...factor });
  }

  /** Sign-in with a passkey. `getCredential` turns the service's request options into the assertion's JSON;
   * the default uses the browser's WebAuthn (React Native passes its own). */
  async signInWithPasskey(
    options: { email?: string; getCredential?: (requestOptions: unknown) => Promise<CredentialJSON> } = {},
  ): Promise<SignInResult> {
    const json = options.email === undefined ? {} : { email: options.email };
    const requestOptions = (await parse(await this.send("/passkeys/login/options", { method: "POST", json }))).data;
    const credential = await (options.getCredential ?? browserAssertion)(requestOptions);
    return this.signedInWith("/passkeys/login", credential);
  }

  private async signedInWith(path: string, json: unknown): Promise<SignInResult> {
    const { data } = await parse(await this.send(path, { method: "POST", json }));
    if (data.mfa_required === true) {
      const { challenge, factors, passkey_options: passkeyOptions } = data;
      return { mfaRequired: true, challenge, factors, ...(passkeyOptions ? { passkeyOptions } : {}) };
    }
    if (this.mode === "body") {
      await this.save({ refresh_token: data.tokens.refresh.token, session_id: data.session.id });
    }
    this.adopt(fromAnswer(data.tokens.access), true);
    return { mfaRequired: false, user: data.user, session: data.session };
  }

  /** Signs out here (the service clears the cookies), or everywhere with `all`; every tab follows. */
  async signOut({ all = false }: { all?: boolean } = {}): Promise<void> {
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
  async reauthenticate(proof: { password: string } | SecondFactor): Promise<void> {
    const { data } = await this.api("/reauthenticate", { method: "POST", json: proof });
    this.adopt(fromAnswer(data.access), true);
  }

  /** `reauthenticate` with one of the account's passkeys (`email`: the signed-in user's address). */
  async reauthenticateWithPasskey(
    email: string,
    getCredential: (requestOptions: unknown) => Promise<CredentialJSON> = browserAssertion,
  ): Promise<void> {
    const options = (await parse(await this.send("/passkeys/login/options", { method: "POST", json: { email } }))).data;
    await this.reauthenticate({ passkey: await getCredential(options) });
  }

  readonly passkeys = {
    /** The account's passkeys. */
    list: async (): Promise<Passkey[]> => (await this.api("/passkeys")).data.passkeys as Passkey[],
    /** Makes a passkey (the default uses the browser's WebAuthn; React Native passes its own `createCredential`). */
    register: async (
      { name, createCredential = browserAttestation }: {
        name?: string;
        createCredential?: (creationOptions: unknown) => Promise<CredentialJSON>;
      } = {},
    ): Promise<Passkey> => {
      const options = (await this.api("/passkeys/register/options", { method: "POST" })).data;
      const credential = await createCredential(options);
      const json = name === undefined ? credential : { ...credential, name };
      return (await this.api("/passkeys/register", { method: "POST", json })).data.passkey as Passkey;
    },
    rename: async (id: number, name: string): Promise<Passkey> =>
      (await this.api(`/passkeys/${id}`, { method: "PATCH", json: { name } })).data.passkey as Passkey,
    remove: async (id: number): Promise<void> => {
      await this.api(`/passkeys/${id}`, { method: "DELETE" });
    },
  };

  readonly mfa = {
    /** The confirmed second factors and how many recovery codes are left. */
    status: async (): Promise<MfaStatus> => (await this.api("/mfa")).data as MfaStatus,
    /** A new authenticator secret, its otpauth:// URI and QR code (SVG); on once `confirmTotp` gets a code. */
    startTotp: async (): Promise<TotpEnrolment> =>
      (await this.api("/mfa/totp", { method: "POST" })).data as TotpEnrolment,
    /** Turns two-step verification on with a first code; answers the recovery codes (shown once). */
    confirmTotp: async (code: string): Promise<string[]> => {
      const { data } = await this.api("/mfa/totp/confirm", { method: "POST", json: { code } });
      this.adopt(fromAnswer(data.access), true); // this session now counts two factors
      return data.recovery_codes as string[];
    },
    removeTotp: async (): Promise<void> => {
      await this.api("/mfa/totp", { method: "DELETE" });
    },
    /** A new set of recovery codes; the old ones stop working. */
    newRecoveryCodes: async (): Promise<string[]> =>
      (await this.api("/mfa/recovery-codes", { method: "POST" })).data.recovery_codes as string[],
  };

  async getUser(): Promise<User> {
    return (await this.api("/me")).data.user as User;
  }

  /** Changes the password; the service signs out every other session. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    await this.api("/password", {
      method: "POST",
      json: { current_password: currentPassword, new_password: newPassword },
    });
  }

  // ------------------------------------------------------------ account email

  /** Asks for a password-reset link; the service answers the same whether or not the address has an account. */
  async requestPasswordReset(email: string): Promise<void> {
    await parse(await this.send("/password/forgot", { method: "POST", json: { email } }));
  }

  /** Sets a new password with the token of a reset link (its fragment); every session of the account ends. */
  async resetPassword(token: string, newPassword: string): Promise<void> {
    await parse(await this.send("/password/reset", { method: "POST", json: { token, new_password: newPassword } }));
  }

  readonly email = {
    /** Asks for a verification link (no sign-in needed); the same answer for any address. */
    requestVerification: async (email: string): Promise<void> => {
      await parse(await this.send("/email/verification", { method: "POST", json: { email } }));
    },
    /** Verifies the address with the token of a verification link. */
    verify: async (token: string): Promise<User> =>
      (await parse(await this.send("/email/verify", { method: "POST", json: { token } }))).data.user as User,
    /** Sends a confirmation to the new address (and a notice to the old one); nothing changes until confirmed. */
    change: async (newEmail: string, password: string): Promise<void> => {
      await this.api("/email/change", { method: "POST", json: { new_email: newEmail, password } });
    },
    /** Confirms an address change with the token of the link sent to the new address. */
    confirmChange: async (token: string): Promise<User> =>
      (await parse(await this.send("/email/change/confirm", { method: "POST", json: { token } }))).data.user as User,
  };

  async deleteAccount(password: string): Promise<void> {
    await this.api("/me", { method: "DELETE", json: { password } });
    if (this.mode === "body") await this.storage.removeItem(this.storageKey);
    this.end("deleted", true);
  }

  readonly sessions = {
    /** The caller's active sessions: this one and the others, most recently active first. */
    list: async (): Promise<SessionList> => (await this.api("/sessions")).data as SessionList,
    revoke: async (sessionId: string): Promise<void> => {
      await this.api(`/sessions/${encodeURIComponent(sessionId)}`, { method: "DELETE" });
    },
    /** Signs out every other session; answers how many. */
    revokeOthers: async (): Promise<number> =>
      (await this.api("/sessions", { method: "DELETE" })).data.revoked as number,
  };

  readonly events = {
    /** The caller's security events, newest first; `before` is an event id (pagination). */
    list: async ({ limit, before }: { limit?: number; before?: number } = {}): Promise<SecurityEvent[]> => {
      const query = new URLSearchParams();
      if (limit !== undefined) query.set("limit", String(limit));
      if (before !== undefined) query.set("before", String(before));
      const suffix = query.toString() ? `?${query}` : "";
      return (await this.api(`/events${suffix}`)).data.events as SecurityEvent[];
    },
  };
}

function withBearer(input: RequestInfo | URL, init: RequestInit, token: string): RequestInit {
  const given = init.headers ?? (typeof Request === "function" && input instanceof Request ? input.headers : {});
  const headers = new Headers(given);
  headers.set("Authorization", `Bearer ${token}`);
  return { ...init, headers };
}

type WebAuthnJSON = {
  parseCreationOptionsFromJSON?: (options: unknown) => unknown;
  parseRequestOptionsFromJSON?: (options: unknown) => unknown;
};

async function browserAttestation(creationOptions: unknown): Promise<CredentialJSON> {
  const webauthn = (globalThis as { PublicKeyCredential?: WebAuthnJSON }).PublicKeyCredential;
  if (webauthn?.parseCreationOptionsFromJSON === undefined) throw new Error("This browser cannot make passkeys");
  const publicKey = webauthn.parseCreationOptionsFromJSON(creationOptions) as PublicKeyCredentialCreationOptions;
  const credential = (await navigator.credentials.create({ publicKey })) as
    | (Credential & { toJSON(): CredentialJSON })
    | null;
  if (credential === null) throw new Error("No passkey was made");
  return credential.toJSON();
}

/** The browser's answer to request options (`MfaRequired.passkeyOptions`, `/passkeys/login/options`). */
export async function browserAssertion(requestOptions: unknown): Promise<CredentialJSON> {
  const webauthn = (globalThis as { PublicKeyCredential?: { parseRequestOptionsFromJSON?: (o: unknown) => unknown } })
    .PublicKeyCredential;
  if (webauthn?.parseRequestOptionsFromJSON === undefined) throw new Error("This browser cannot use passkeys");
  const publicKey = webauthn.parseRequestOptionsFromJSON(requestOptions) as PublicKeyCredentialRequestOptions;
  const credential = (await navigator.credentials.get({ publicKey })) as (Credential & { toJSON(): CredentialJSON }) | null;
  if (credential === null) throw new Error("No passkey was chosen");
  return credential.toJSON();
}
