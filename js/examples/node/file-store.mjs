// sessionward-js in body mode from Node, with the refresh token kept in a file between runs.
//   SESSIONWARD_PASSWORD=... node js/examples/node/file-store.mjs --url http://127.0.0.1:8000 --email me@example.com
// The first run signs in; later runs restore the session from the file (one refresh) until it ends.
import { readFile, rm, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { SignedOutError, createClient } from "../../dist/sessionward.js";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8000" },
    email: { type: "string" },
    store: { type: "string", default: "sessionward-session.json" },
    "sign-out": { type: "boolean", default: false },
  },
});

/** The KeyValueStorage adapter: one JSON file, readable by this user only (it holds a refresh token). */
function fileStorage(path) {
  const read = async () => JSON.parse(await readFile(path, "utf8").catch(() => "{}"));
  return {
    getItem: async (key) => (await read())[key] ?? null,
    setItem: async (key, value) => writeFile(path, JSON.stringify({ ...(await read()), [key]: value }), { mode: 0o600 }),
    removeItem: async () => rm(path, { force: true }),
  };
}

const auth = createClient({ url: values.url, mode: "body", storage: fileStorage(values.store) });

async function restoreOrSignIn() {
  try {
    await auth.getAccessToken();
    return "restored";
  } catch (error) {
    if (!(error instanceof SignedOutError)) throw error; // offline: keep the stored session for the next run
    const password = process.env.SESSIONWARD_PASSWORD;
    if (values.email === undefined || password === undefined) throw new Error("no session: pass --email and SESSIONWARD_PASSWORD");
    const result = await auth.signIn(values.email, password);
    if (result.mfaRequired) throw new Error(`this account needs a second factor (${result.factors.join(", ")})`);
    return "new";
  }
}

const how = await restoreOrSignIn();
const response = await auth.fetch(`${values.url}/api/v1/auth/me`);
const { user } = (await response.json()).data;
const { other_sessions: others } = await auth.sessions.list();
console.log(JSON.stringify({ session: how, email: user.email, otherSessions: others.length }));
if (values["sign-out"]) await auth.signOut();
