// `sessionward serve` as a real process for the SDK's tests: the repository's own Python (SESSIONWARD_PYTHON,
// default ../.venv/bin/python, which `make test` creates), a SQLite file in a fresh folder, a free port.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PYTHON = process.env.SESSIONWARD_PYTHON ?? resolve(dirname(fileURLToPath(import.meta.url)), "../../.venv/bin/python");
const TEST_ENV = {
  ARGON2_MEMORY_KIB: "1024",
  ARGON2_TIME_COST: "1",
  ARGON2_PARALLELISM: "1",
  CLEANUP_SCHEDULE: "off",
  JWT_SECRET: "test-secret-with-at-least-32-bytes-of-entropy",
  RATE_LIMIT_ENABLED: "false",
};

export function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
    probe.on("error", fail);
  });
}

export class LiveServer {
  constructor(env = {}) {
    this.folder = mkdtempSync(join(tmpdir(), "sessionward-js-"));
    this.env = env;
    this.process = null;
  }

  async start() {
    this.port ??= await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    const log = openSync(join(this.folder, "server.log"), "a");
    this.process = spawn(PYTHON, ["-m", "sessionward", "serve", "--port", String(this.port)], {
      cwd: this.folder,
      env: this.environment(),
      stdio: ["ignore", log, log],
      detached: true,
    });
    await this.ready();
    return this;
  }

  environment() {
    const env = { ...cleanEnvironment(), ...TEST_ENV, DATA_DIR: join(this.folder, "var"), ...this.env };
    env.DATABASE_URL = `sqlite:///${join(this.folder, "var", "sessionward.db")}`;
    return env;
  }

  /** `sessionward ARGS...` on this server's database; what it printed. */
  command(...args) {
    return execFileSync(PYTHON, ["-m", "sessionward", ...args], {
      cwd: this.folder,
      env: this.environment(),
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  }

  async ready(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.process.exitCode !== null) throw new Error(`sessionward exited with ${this.process.exitCode}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((done) => setTimeout(done, 100));
    }
    throw new Error("sessionward did not become ready");
  }

  async stop() {
    if (this.process === null) return;
    const exited = new Promise((done) => this.process.once("exit", done));
    process.kill(-this.process.pid, "SIGTERM"); // its process group: the server and any worker
    await exited;
    this.process = null;
  }
}

function cleanEnvironment() {
  const prefixes = ["JWT_", "DATABASE_", "DATA_DIR", "REDIS_", "CORS_", "COOKIE_", "ACCESS_TOKEN_"];
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !prefixes.some((p) => name.startsWith(p))));
}

let count = 0;
/** A new address on every call: one server serves a whole test file. */
export function newEmail() {
  count += 1;
  return `js${count}-${Math.random().toString(36).slice(2, 10)}@example.com`;
}

export const PASSWORD = "correct horse battery";

/** A fetch that counts the /refresh calls it makes (the real fetch underneath). */
export function countingFetch() {
  const counted = (input, init) => {
    if (String(input).endsWith("/api/v1/auth/refresh")) counted.refreshes += 1;
    return fetch(input, init);
  };
  counted.refreshes = 0;
  return counted;
}
