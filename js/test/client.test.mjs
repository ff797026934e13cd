// The SDK in body mode (Node) against a live `sessionward serve`.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ApiError, SignedOutError, createClient, memoryStorage } from "../dist/sessionward.js";
import { LiveServer, PASSWORD, countingFetch, newEmail } from "./server.mjs";

const API = "/api/v1/auth";
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function revokeAccessToken(server, token) {
  const response = await fetch(`${server.url}${API}/revoke`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token, token_type_hint: "access_token" }),
  });
  assert.equal(response.status, 200);
}

/** A client signed in as a new user; `events` records what onAuthStateChange saw. */
async function signedIn(server, options = {}) {
  const client = createClient({ url: server.url, ...options });
  const events = [];
  client.onAuthStateChange((event, detail) => events.push(detail.reason ? `${event}:${detail.reason}` : event));
  const email = options.email ?? newEmail();
  if (options.email === undefined) await client.signUp(email, PASSWORD);
  const result = await client.signIn(email, PASSWORD);
  return { client, events, email, result };
}

describe("with a live server", () => {
  const server = new LiveServer({ ACCESS_TOKEN_EXPIRES_IN: "2s" });
  before(() => server.start());
  after(() => server.stop());

  test("sign up, sign in, call a protected endpoint, list sessions and events, sign out", async () => {
    const storage = memoryStorage();
    const { client, events, email, result } = await signedIn(server, { storage });
    assert.equal(client.mode, "body");
    assert.equal(result.mfaRequired, false);
    assert.equal(result.user.email, email);
    const stored = JSON.parse(await storage.getItem("sessionward"));
    assert.equal(stored.session_id, result.session.id);
    assert.match(stored.refresh_token, /^[\w-]{43,}$/);

    const me = await client.fetch(`${server.url}${API}/me`);
    assert.equal(me.status, 200);
    assert.equal((await me.json()).data.user.email, email);
    assert.equal((await client.getUser()).email, email);
    const sessions = await client.sessions.list();
    assert.equal(sessions.current_session.id, result.session.id);
    assert.deepEqual(sessions.other_sessions, []);
    const types = (await client.events.list({ limit: 10 })).map((event) => event.type);
    assert.ok(types.includes("login_succeeded"), types);

    await client.signOut();
    assert.equal(await storage.getItem("sessionward"), null);
    assert.equal(client.signedIn, false);
    await assert.rejects(client.getAccessToken(), (error) => error instanceof SignedOutError);
    assert.deepEqual(events, ["signed_in", "signed_out:signed_out"]);
    const old = await fetch(`${server.url}${API}/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(stored),
    });
    assert.equal(old.status, 401); // the service ended the session, not only the client
  });

  test("a wrong password is an ApiError with the service's sentence, and nothing is stored", async () => {
    const storage = memoryStorage();
    const client = createClient({ url: server.url, storage });
    const email = newEmail();
    await client.signUp(email, PASSWORD);
    await assert.rejects(client.signIn(email, "not the password"), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 401);
      assert.equal(error.message, "Incorrect email or password");
      return true;
    });
    assert.equal(await storage.getItem("sessionward"), null);
    await assert.rejects(client.signUp("not an email", PASSWORD), (error) => error.status === 400 && error.errors.length > 0);
  });

  test("an expiring token is refreshed once for many concurrent callers", async () => {
    const counting = countingFetch();
    const { client, events } = await signedIn(server, { fetch: counting });
    const first = await client.getAccessToken();
    await sleep(1_600); // within a quarter of its 2 s lifetime of expiry: due for a refresh
    const tokens = await Promise.all(Array.from({ length: 5 }, () => client.getAccessToken()));
    assert.equal(counting.refreshes, 1);
    assert.equal(new Set(tokens).size, 1);
    assert.notEqual(tokens[0], first);
    assert.deepEqual(events, ["signed_in", "token_refreshed"]);
  });

  test("fetch refreshes once and retries each request once when the access token is refused", async () => {
    const counting = countingFetch();
    const { client } = await signedIn(server, { fetch: counting });
    const token = await client.getAccessToken();
    await revokeAccessToken(server, token); // RFC 7009: the session (and its refresh token) lives on
    const responses = await Promise.all(Array.from({ length: 4 }, () => client.fetch(`${server.url}${API}/me`)));
    assert.deepEqual(
      responses.map((response) => response.status),
      [200, 200, 200, 200],
    );
    assert.equal(counting.refreshes, 1);
    assert.notEqual(await client.getAccessToken(), token);
  });

  test("fetch keeps the caller's request: method, headers and body are sent again on the retry", async () => {
    const { client } = await signedIn(server);
    await revokeAccessToken(server, await client.getAccessToken());
    const request = new Request(`${server.url}${API}/sessions`, { method: "GET", headers: { accept: "application/json" } });
    const response = await client.fetch(request);
    assert.equal(response.status, 200);
    assert.ok((await response.json()).data.current_session.is_current);
    const post = await client.fetch(`${server.url}${API}/password`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ current_password: "wrong password", new_password: "another good password" }),
    });
    assert.equal(post.status, 403); // the body arrived: the service checked the current password
  });

  test("a refused refresh signs out once, with its reason, and clears the storage", async () => {
    const storage = memoryStorage();
    const { client, events, email, result } = await signedIn(server, { storage });
    const { client: other } = await signedIn(server, { email });
    await other.sessions.revoke(result.session.id);
    await sleep(1_600);
    const outcomes = await Promise.allSettled([client.getAccessToken(), client.getAccessToken(), client.getUser()]);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof SignedOutError);
      assert.equal(outcome.reason.reason, "revoked");
    }
    await assert.rejects(client.getAccessToken(), SignedOutError);
    assert.deepEqual(events, ["signed_in", "signed_out:revoked"]);
    assert.equal(await storage.getItem("sessionward"), null);
  });

  test("sign out everywhere ends the other clients' sessions too", async () => {
    const { client, email } = await signedIn(server);
    const { client: other, events } = await signedIn(server, { email });
    await client.signOut({ all: true });
    await assert.rejects(other.getUser(), (error) => error instanceof SignedOutError && error.reason === "revoked");
    assert.deepEqual(events, ["signed_in", "signed_out:revoked"]);
  });

  test("revoking the other sessions answers how many", async () => {
    const { client, email } = await signedIn(server);
    await signedIn(server, { email });
    await signedIn(server, { email });
    assert.equal(await client.sessions.revokeOthers(), 2);
    assert.equal((await client.sessions.list()).other_sessions.length, 0);
  });

  test("a client that never signed in is signed out with reason none, without a request", async () => {
    const counting = countingFetch();
    const client = createClient({ url: server.url, fetch: counting });
    await assert.rejects(client.getAccessToken(), (error) => error.reason === "none");
    assert.equal(counting.refreshes, 0);
  });
});

describe("when the service is unreachable", () => {
  const server = new LiveServer({ ACCESS_TOKEN_EXPIRES_IN: "2s" });
  before(() => server.start());
  after(() => server.stop());

  test("a network error during refresh keeps the session, and the next refresh works", async () => {
    const storage = memoryStorage();
    const { client, events } = await signedIn(server, { storage });
    const stored = await storage.getItem("sessionward");
    await server.stop();
    await sleep(1_600);
    await assert.rejects(client.getAccessToken(), (error) => !(error instanceof SignedOutError));
    assert.equal(await storage.getItem("sessionward"), stored);
    assert.equal(events[0], "signed_in");
    assert.ok(events.length > 1 && events.slice(1).every((event) => event === "refresh_failed"), events);
    await server.start(); // the same port and database
    const token = await client.getAccessToken();
    assert.match(token, /^ey/);
    assert.equal(events.at(-1), "token_refreshed");
    assert.ok(!events.some((event) => event.startsWith("signed_out")), events);
    assert.notEqual(await storage.getItem("sessionward"), stored);
  });
});

describe("the Node example with a file store", () => {
  const server = new LiveServer();
  before(() => server.start());
  after(() => server.stop());

  test("signs in on the first run, restores the session on the next, and signs out", async () => {
    const { execFile } = await import("node:child_process");
    const { mkdtemp, stat } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const store = join(await mkdtemp(join(tmpdir(), "sessionward-example-")), "session.json");
    const email = newEmail();
    await createClient({ url: server.url }).signUp(email, PASSWORD);
    const script = new URL("../examples/node/file-store.mjs", import.meta.url).pathname;
    const run = (...args) =>
      new Promise((done, fail) =>
        execFile(process.execPath, [script, "--url", server.url, "--store", store, ...args], {
          env: { ...process.env, SESSIONWARD_PASSWORD: PASSWORD },
        }, (error, stdout) => (error ? fail(error) : done(JSON.parse(stdout)))),
      );
    assert.deepEqual(await run("--email", email), { session: "new", email, otherSessions: 0 });
    assert.equal((await stat(store)).mode & 0o777, 0o600);
    assert.deepEqual(await run(), { session: "restored", email, otherSessions: 0 });
    assert.deepEqual(await run("--sign-out"), { session: "restored", email, otherSessions: 0 });
    await assert.rejects(stat(store)); // signing out removed the stored token
  });
});
