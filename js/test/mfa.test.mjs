// Two-step verification through the SDK against a live `sessionward serve`: enrol, the second stage of a sign-in,
// step-up. TOTP codes are computed here (RFC 6238) from the secret the service gave.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { ApiError, createClient } from "../dist/sessionward.js";
import { LiveServer, PASSWORD, newEmail } from "./server.mjs";

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of text.replace(/=+$/, "")) bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** The code of the time step `steps` from now (RFC 6238: HMAC-SHA-1, 30 s, 6 digits). */
function totp(secret, steps = 0) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000) + steps));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

describe("two-step verification", () => {
  const server = new LiveServer({ STEP_UP_MAX_AGE: "2s" });
  before(() => server.start());
  after(() => server.stop());

  test("enrol, then a sign-in needs the code; a stale session steps up with the next one", async () => {
    const email = newEmail();
    const enrolling = createClient({ url: server.url });
    await enrolling.signUp(email, PASSWORD);
    await enrolling.signIn(email, PASSWORD);
    const enrolment = await enrolling.mfa.startTotp();
    assert.match(enrolment.otpauth_uri, /^otpauth:\/\/totp\//);
    assert.match(enrolment.qr_svg, /^<svg/);
    const codes = await enrolling.mfa.confirmTotp(totp(enrolment.secret));
    assert.equal(codes.length, 10);
    const status = await enrolling.mfa.status();
    assert.deepEqual(status.factors, ["totp", "recovery_code"]);

    const phone = createClient({ url: server.url });
    const first = await phone.signIn(email, PASSWORD);
    assert.equal(first.mfaRequired, true);
    assert.equal(phone.signedIn, false);
    await assert.rejects(phone.signInMfa(first.challenge, { totp: "000000" }), (e) => e.status === 403);
    const done = await phone.signInMfa(first.challenge, { totp: totp(enrolment.secret, 1) });
    assert.equal(done.mfaRequired, false);
    assert.equal((await phone.sessions.list()).current_session.aal, "aal2");

    await sleep(2_500); // past STEP_UP_MAX_AGE
    await assert.rejects(
      phone.sessions.revokeOthers(),
      (e) => e instanceof ApiError && e.code === "step_up_required" && e.aal === "aal2",
    );
    await phone.reauthenticate({ recovery_code: codes[0] });
    assert.equal(await phone.sessions.revokeOthers(), 1);
    assert.equal((await phone.mfa.status()).recovery_codes_left, 9);
  });
});
