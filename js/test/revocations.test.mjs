// RevocationList (sessionward-js/revocations), an app backend's view of the revocation stream: the event-stream
// parser on its own, then the list against a live `sessionward serve` that is stopped and started again.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EventParser, RevocationList, RevocationsUnavailableError, RevokedSessionError } from "../dist/revocations.js";
import { LiveServer, PASSWORD, newEmail } from "./server.mjs";

const API = "/api/v1/auth";
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function parsed(chunks) {
  const events = [];
  const parser = new EventParser((event) => events.push(event));
  for (const chunk of chunks) parser.feed(chunk);
  return events;
}

test("the parser reads events whatever the chunks, line endings, comments and multi-line data", () => {
  const text =
    ": ping - 2026-12-03\r\n\r\n" +
    "id: 17-a\r\nevent: revocation\r\ndata: {\"sid\":\"a\"}\r\n\r\n" +
    "event: revocation\ndata: one\ndata: two\n\n" +
    "id: 18-b\revent: other\rdata\r\r" +
    "retry: 100\nunknown: x\n\n"; // no data: no event
  const expected = [
    { event: "revocation", data: '{"sid":"a"}', id: "17-a" },
    { event: "revocation", data: "one\ntwo", id: "17-a" }, // the last id stays until another comes
    { event: "other", data: "", id: "18-b" },
  ];
  assert.deepEqual(parsed([text]), expected);
  for (let cut = 1; cut < text.length; cut += 1) {
    assert.deepEqual(parsed([text.slice(0, cut), text.slice(cut)]), expected, `cut at ${cut}`);
  }
  assert.deepEqual(parsed([...text]), expected); // a character at a time
  assert.deepEqual(parsed(["data: unfinished"]), []); // an event is dispatched only at its blank line
});

describe("against a live server", () => {
  const server = new LiveServer({ JWT_ALGORITHM: "EdDSA" });
  let key;
  before(async () => {
    await server.start();
    key = server.command("service-keys", "create", "--name", "js backend", "--scope", "sessions:read").trim();
  });
  after(() => server.stop());

  async function signedIn(email) {
    const response = await fetch(`${server.url}${API}/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    assert.equal(response.status, 200);
    const { data } = await response.json();
    return { sid: data.session.id, auth: { authorization: `Bearer ${data.tokens.access.token}` } };
  }

  async function signOut(session) {
    const response = await fetch(`${server.url}${API}/logout`, {
      method: "POST",
      headers: { ...session.auth, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(response.status, 200);
  }

  async function revokedWithin(list, sid, ms) {
    const deadline = Date.now() + ms;
    while (!list.isRevoked(sid)) {
      if (Date.now() > deadline) return false;
      await sleep(5);
    }
    return true;
  }

  test("a revocation is seen within a second; down past maxStale it fails closed (or open), then reconnects", async () => {
    const email = newEmail();
    const registered = await fetch(`${server.url}${API}/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
    assert.equal(registered.status, 201);
    const earlier = await signedIn(email);
    await signOut(earlier); // before the list starts: it comes in the snapshot

    const closed = new RevocationList({ url: server.url, serviceKey: key, maxStale: 1, reconnectDelay: 0.1 }).start();
    const open = new RevocationList({ url: server.url, serviceKey: key, maxStale: 1, failOpen: true }).start();
    try {
      assert.equal(await closed.waitUntilConnected(), true);
      assert.equal(await revokedWithin(closed, earlier.sid, 1000), true, "the snapshot");
      assert.throws(() => closed.check(earlier.sid), RevokedSessionError);

      const live = await signedIn(email);
      closed.check(live.sid);
      const started = Date.now();
      await signOut(live);
      assert.equal(await revokedWithin(closed, live.sid, 1000), true, "within a second");
      console.log(`REVOCATION_LIST_DELAY ${Date.now() - started} ms`);

      const missed = await signedIn(email);
      await server.stop();
      await sleep(1500); // past maxStale
      assert.equal(closed.connected, false);
      assert.throws(() => closed.check(missed.sid), RevocationsUnavailableError);
      open.check(missed.sid); // fails open: let through on its signature alone

      await server.start();
      assert.equal(await closed.waitUntilConnected(), true);
      assert.equal(closed.connects, 2);
      closed.check(missed.sid); // connected again: not revoked, not stale
      await signOut(missed);
      assert.equal(await revokedWithin(closed, missed.sid, 1000), true, "after the restart");
      assert.throws(() => closed.check(live.sid), RevokedSessionError); // still known after the reconnect
    } finally {
      closed.close();
      open.close();
    }
  });

  test("a key without the scope is refused, and the list stays down", async () => {
    const wrong = server.command("service-keys", "create", "--name", "no scope", "--scope", "users:read").trim();
    const list = new RevocationList({ url: server.url, serviceKey: wrong, maxStale: 0, reconnectDelay: 0.2 }).start();
    try {
      assert.equal(await list.waitUntilConnected(500), false);
      assert.throws(() => list.check("any"), RevocationsUnavailableError);
    } finally {
      list.close();
    }
  });
});
