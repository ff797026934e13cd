/**
 * sessionward-js: sign in to a sessionward service, keep the access token fresh (one refresh at a time, across
 * tabs too), and call APIs with it.
 *
 * ```ts
 * const auth = createClient({ url: "https://auth.example.com" });
 * await auth.signIn(email, password);
 * const response = await auth.fetch("https://api.example.com/orders");
 * ```
 */

import { Client, type ClientOptions } from "./client.js";

export function createClient(options: ClientOptions): Client {
  return new Client(options);
}

export { Client, browserAssertion, type AuthListener, type ClientOptions } from "./client.js";
export { ApiError, SignedOutError, type FieldError, type SignedOutReason } from "./errors.js";
export { memoryStorage, type KeyValueStorage } from "./storage.js";
export type { Access } from "./tabs.js";
export type * from "./types.js";
