// One refresh at a time across the tabs of a browser: a Web Lock serialises refreshes and a BroadcastChannel
// hands the new access token to the other tabs, so N open tabs cause one /refresh (never a reuse detection).
// Where neither exists (Node, React Native), everything here is a no-op and the client's own single flight
// (one promise per JS context) is the only one needed.

import type { SignedOutReason } from "./errors.js";

/** An access token with its times in ms. */
export interface Access {
  token: string;
  expiresAt: number;
  lifetime: number;
}

export type TabMessage =
  | ({ type: "token" } & Access)
  | { type: "need"; stale: string | null }
  | { type: "signed_out"; reason: SignedOutReason };

const PEER_WAIT_MS = 400;
const PRESENCE = "-tab-";

type Offer = (access: Access | null) => boolean;

export class Tabs {
  private readonly channel: BroadcastChannel | null;
  private readonly locks: LockManager | null;
  private readonly lockName: string;
  private readonly tabName: string;
  private readonly offers = new Set<Offer>();
  private present = false;

  constructor(name: string, enabled: boolean, onMessage: (message: TabMessage) => void) {
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    this.channel = enabled && typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
    this.locks = enabled && locks !== undefined ? locks : null;
    this.lockName = name;
    this.tabName = name + PRESENCE + Math.random().toString(36).slice(2);
    this.channel?.addEventListener("message", (event: MessageEvent<TabMessage>) => {
      if (event.data?.type === "token") this.offer(event.data);
      onMessage(event.data);
    });
  }

  post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  /** Runs `work` holding the refresh lock; `waited` says another tab held it first (and may have refreshed). */
  async withLock<T>(work: (waited: boolean) => Promise<T>): Promise<T> {
    if (this.locks === null) return work(false);
    const busy = Symbol("busy");
    const first = await this.locks.request(this.lockName, { ifAvailable: true }, (lock) =>
      lock ? work(false) : busy,
    );
    if (first !== busy) return first as T;
    return this.locks.request(this.lockName, () => work(true));
  }

  /** A tab that holds a token says so with a lock it never releases (the browser releases it with the tab). */
  announcePresence(): void {
    if (this.present || this.locks === null) return;
    this.present = true;
    this.locks.request(this.tabName, () => new Promise<never>(() => {})).catch(() => {});
  }

  async othersPresent(): Promise<boolean> {
    if (this.locks === null) return this.channel !== null;
    const { held = [] } = await this.locks.query();
    const prefix = this.lockName + PRESENCE;
    return held.some((lock) => lock.name?.startsWith(prefix) === true && lock.name !== this.tabName);
  }

  /** Asks the other tabs for an access token newer than `stale`; null when none answers in time. */
  askPeers(stale: string | null, usable: (access: Access) => boolean): Promise<Access | null> {
    if (this.channel === null) return Promise.resolve(null);
    return new Promise((resolve) => {
      const take: Offer = (access) => {
        if (access !== null && (access.token === stale || !usable(access))) return false;
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

  private offer(message: Access): void {
    const access = { token: message.token, expiresAt: message.expiresAt, lifetime: message.lifetime };
    for (const take of [...this.offers]) take(access);
  }
}
