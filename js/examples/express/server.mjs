// An app's own API on Express that accepts sessionward access tokens and refuses a revoked session's within a
// second. Each request is checked here: the signature with jose against the service's JWKS (fetched once, then
// cached), the session against the revocation stream kept open by sessionward-js's RevocationList. No call to
// sessionward per request.
//
//   JWT_ALGORITHM=EdDSA sessionward serve --port 8000
//   sessionward service-keys create --name my-api --scope sessions:read      # prints swk_...
//   npm install && node server.mjs --server http://127.0.0.1:8000 --key swk_... --port 8001
//
// GET /hello answers the caller's user and session; GET /healthz whether the stream is open.
import express from "express";
import { createRemoteJWKSet, errors, jwtVerify } from "jose";
import { RevocationList, RevocationsUnavailableError, RevokedSessionError } from "sessionward-js/revocations";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    server: { type: "string", default: "http://127.0.0.1:8000" },
    key: { type: "string" },
    port: { type: "string", default: "8001" },
    issuer: { type: "string", default: "sessionward" },
    audience: { type: "string", default: "sessionward" },
  },
});
if (!args.key) throw new Error("--key: a service key with the scope sessions:read");

const revocations = new RevocationList({ url: args.server, serviceKey: args.key, maxStale: 5 }).start();
const keys = createRemoteJWKSet(new URL("/.well-known/jwks.json", args.server));

/** Express middleware: `req.auth` is the verified token's claims, or the request ends with 401 or 503. */
function sessionwardAuth({ exempt = new Set() } = {}) {
  return async (req, res, next) => {
    if (exempt.has(req.path)) return next();
    const [scheme, token] = (req.get("authorization") ?? "").split(" ");
    if (scheme?.toLowerCase() !== "bearer" || !token) return refuse(res, 401, "Missing bearer token");
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: args.issuer,
        audience: args.audience,
        algorithms: ["EdDSA", "ES256"],
        typ: "at+jwt",
        clockTolerance: 1,
        requiredClaims: ["sub", "sid", "jti", "iat", "exp"],
      });
      revocations.check(payload.sid);
      req.auth = payload;
      return next();
    } catch (error) {
      if (error instanceof RevocationsUnavailableError) return refuse(res, 503, error.message);
      if (error instanceof RevokedSessionError || error instanceof errors.JOSEError) return refuse(res, 401, "Invalid token");
      return next(error);
    }
  };
}

function refuse(res, status, message) {
  if (status === 401) res.set("WWW-Authenticate", "Bearer");
  res.status(status).json({ error: { message } });
}

const app = express();
app.use(sessionwardAuth({ exempt: new Set(["/healthz"]) }));
app.get("/healthz", (req, res) => res.json({ ok: revocations.connected }));
app.get("/hello", (req, res) => res.json({ user: Number(req.auth.sub), session: req.auth.sid }));

const listener = app.listen(Number(args.port), "127.0.0.1");
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    revocations.close();
    listener.close(() => process.exit(0));
    listener.closeAllConnections();
  });
}
