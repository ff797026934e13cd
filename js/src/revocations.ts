/**
 * The service's revocation stream, for an app's own backend (Node 20+, Deno, Bun: anything with `fetch` and
 * streams) that verifies access tokens itself: a revoked session's tokens are refused within a second of the
 * revocation, with no call to sessionward per request.
 *
 * ```ts
 * const revocations = new RevocationList({ url: "https://auth.example.com", serviceKey: "swk_..." }).start();
 * // after the token's signature checks out (jose's jwtVerify, say):
 * revocations.check(payload.sid); // throws RevokedSessionError or RevocationsUnavailableError
 * ```
 *
 * The stream (`GET /api/v1/auth/revocations`, a service key with scope `sessions:read`) sends every revoked
 * session with `until`, when its last access token expires; an entry is forgotten after that. When the stream has
 * been down for more than `maxStale` seconds, `check` fails closed (`RevocationsUnavailableError`), or with
 * `failOpen: true` lets tokens through on their signature alone.
 */

export const STREAM_PATH = "/api/v1/auth/revocations";
const READ_TIMEOUT_MS = 40_000; // the service pings every 15 s: a silent connection is a dead one

export interface RevocationListOptions {
  /** The sessionward service's base URL. */
  url: string;
  /** A service key with scope `sessions:read` (`swk_...`). */
  serviceKey: string;
  /** Seconds the stream may be down before `check` fails closed; default 5. */
  maxStale?: number;
  /** Past `maxStale`, let tokens through on their signature alone instead of refusing them; default false. */
  failOpen?: boolean;
  /** Seconds between reconnection attempts; default 0.5. */
  reconnectDelay?: number;
  fetch?: typeof fetch;
}

/** The token's session was revoked: answer 401. */
export class RevokedSessionError extends Error {
  override name = "RevokedSessionError";
}

/** The stream has been down past `maxStale` and the list fails closed: answer 503. */
export class RevocationsUnavailableError extends Error {
  override name = "RevocationsUnavailableError";
}

interface Entry {
  sid: string;
  until: string;
}

export class RevocationList {
  /** How many times the stream was (re)opened. */
  connects = 0;
  private readonly url: string;
  private readonly key: string;
  private readonly maxStaleMs: number;
  private readonly failOpen: boolean;
  private readonly reconnectMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly revoked = new Map<string, number>(); // session id -> when its last token expires (epoch ms)
  private lastEventId: string | undefined;
  private downSince: number | undefined = Date.now(); // not connected yet
  private running: AbortController | undefined;
  private warned = false; // one warning per outage, not one per attempt

  constructor(options: RevocationListOptions) {
    this.url = options.url.replace(/\/+$/, "") + STREAM_PATH;
    this.key = options.serviceKey;
    this.maxStaleMs = (options.maxStale ?? 5) * 1000;
    this.failOpen = options.failOpen ?? false;
    this.reconnectMs = (options.reconnectDelay ?? 0.5) * 1000;
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  get connected(): boolean {
    return this.downSince === undefined;
  }

  start(): this {
    if (this.running === undefined) {
      this.running = new AbortController();
      void this.run(this.running.signal);
    }
    return this;
  }

  close(): void {
    this.running?.abort();
    this.running = undefined;
  }

  /** Resolves true once the stream is open (its snapshot on the way), false after `timeoutMs`. */
  async waitUntilConnected(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected && Date.now() < deadline) await sleep(10);
    return this.connected;
  }

  isRevoked(sessionId: string): boolean {
    const until = this.revoked.get(sessionId);
    return until !== undefined && until > Date.now();
  }

  /** Throws `RevokedSessionError` for a revoked session, `RevocationsUnavailableError` when failing closed. */
  check(sessionId: string): void {
    if (this.isRevoked(sessionId)) throw new RevokedSessionError("Session revoked");
    const down = this.downSince;
    if (down !== undefined && Date.now() - down > this.maxStaleMs && !this.failOpen) {
      throw new RevocationsUnavailableError("The revocation stream of the sessionward service is unreachable");
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.listen(signal);
      } catch (error) {
        if (!signal.aborted) this.warn(`revocation stream broke: ${(error as Error).name}`);
      }
      this.downSince ??= Date.now();
      await sleep(this.reconnectMs);
    }
  }

  private async listen(signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}`, accept: "text/event-stream" };
    if (this.lastEventId !== undefined) headers["last-event-id"] = this.lastEventId;
    const silent = new AbortController();
    const abort = (): void => silent.abort();
    signal.addEventListener("abort", abort, { once: true });
    let timer = setTimeout(abort, READ_TIMEOUT_MS);
    try {
      const response = await this.fetchImpl(this.url, { headers, signal: silent.signal });
      if (response.status !== 200 || response.body === null) {
        this.warn(`revocation stream refused: ${response.status}`);
        await response.body?.cancel();
        return;
      }
      this.connects += 1;
      this.downSince = undefined;
      this.warned = false;
      const parser = new EventParser((event) => this.onEvent(event));
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        clearTimeout(timer);
        timer = setTimeout(abort, READ_TIMEOUT_MS);
        parser.feed(decoder.decode(chunk, { stream: true }));
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", abort);
    }
  }

  private warn(message: string): void {
    if (!this.warned) console.warn(`sessionward: ${message}`);
    this.warned = true;
  }

  private onEvent(event: ServerSentEvent): void {
    if (event.event !== "revocation") return;
    const entry = JSON.parse(event.data) as Entry;
    const until = Date.parse(entry.until);
    const now = Date.now();
    if (until > now) this.revoked.set(entry.sid, until);
    if (event.id !== undefined) this.lastEventId = event.id;
    if (this.revoked.size % 256 === 0) {
      for (const [sid, at] of this.revoked) if (at <= now) this.revoked.delete(sid); // now and then: the moot go
    }
  }
}

export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | undefined;
}

/** The text/event-stream format (the HTML standard's "event stream interpretation"), fed in arbitrary chunks. */
export class EventParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;

  constructor(private readonly emit: (event: ServerSentEvent) => void) {}

  feed(text: string): void {
    // The last piece is an unfinished line; a "\r" at the very end may yet be the first half of "\r\n".
    const input = this.buffer + text;
    const end = input.endsWith("\r") ? input.length - 1 : input.length;
    const lines = input.slice(0, end).split(/\r\n|\r|\n/);
    this.buffer = (lines.pop() ?? "") + input.slice(end);
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) this.emit({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      this.data = [];
      this.event = "";
      return;
    }
    if (line.startsWith(":")) return; // a comment: the service's ping
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
