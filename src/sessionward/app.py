"""The ASGI application: routers, the envelope for every error, and the request pipeline."""

from __future__ import annotations

import asyncio
import codecs
import functools
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from sessionward import deps, logs, metrics
from sessionward.admin.routes import router as admin_router
from sessionward.apps.routes import router as apps_router
from sessionward.audit.routes import router as audit_router
from sessionward.config import Settings, load_settings
from sessionward.context import Context
from sessionward.errors import AppError, ErrorCode, validation
from sessionward.http import JSON, failure, server_error
from sessionward.jobs.scheduler import run_schedule
from sessionward.mail.routes import router as mail_router
from sessionward.mfa.routes import router as mfa_router
from sessionward.outbox import store as outbox_store
from sessionward.passkeys.routes import router as passkeys_router
from sessionward.schemas import NO_CONTROL, NO_NUL
from sessionward.sessions.routes import router as sessions_router
from sessionward.tokens.routes import router as tokens_router
from sessionward.users.routes import router as users_router
from sessionward.web.cors import Cors
from sessionward.web.routes import router as web_router

log = logging.getLogger("sessionward")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 64 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FORM_PATHS = {"/api/v1/auth/revoke", "/api/v1/auth/introspect"}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # the others' bodies are never read


@functools.lru_cache(maxsize=1024)  # (the server parses only known methods; routes and statuses are few)
def _metrics(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """A request's counter and histogram: ``labels()`` takes a lock and builds its key on every call."""
    return metrics.REQUESTS.labels(method, route, str(status)), metrics.LATENCY.labels(route)


_ids = itertools.count(1)
_ID_PREFIX = secrets.token_hex(4)  # this process's; with the counter, unique and cheap (no CSPRNG read per request)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):08x}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Pipeline:
    """Request id, access log and metrics; the body guard (content type, 64 KiB) before any parsing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else _new_request_id()
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            rejected = _reject_body(scope)
            if rejected is not None:
                await failure(rejected)(scope, receive, send_with_id)
            else:
                guarded = _limited(receive) if scope["method"] in _BODY_METHODS else receive
                await self.app(scope, guarded, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: an envelope, never a traceback
            # Starlette re-raises after its handler answered; the server would log the exception's
            # text, which for a database error includes statement parameters.
            if not started_response:
                await server_error()(scope, receive, send_with_id)
            log.error("request failed", extra={"exc_type": type(exc).__name__})
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            counted, timed = _metrics(scope["method"], route, status)
            counted.inc()
            timed.observe(elapsed)
            logs.access.add(
                rid,
                {"method": scope["method"], "path": scope["path"], "status": status, "ms": round(elapsed * 1000, 2)},
            )
            logs.request_id.reset(token)


class _BodyRejected(HTTPException):
    """Raised while the body is read; an HTTPException because FastAPI re-raises those as they are
    (anything else it turns into a bare 400)."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


def _limited(receive: Receive) -> Receive:
    """Counts the bytes of a body that came without (or with a lying) Content-Length, and insists on
    UTF-8 without NUL bytes (RFC 8259 §8.1: the stdlib parser would also take UTF-16 and UTF-32)."""
    seen = 0
    utf8 = codecs.getincrementaldecoder("utf-8")()

    async def guarded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > MAX_BODY:
                raise _BodyRejected(AppError(ErrorCode.PAYLOAD_TOO_LARGE, "Request body is larger than 64 KiB"))
            try:
                utf8.decode(chunk, final=not message.get("more_body", False))
            except UnicodeDecodeError:
                raise _BodyRejected(validation("body", "Request body is not valid UTF-8")) from None
            if b"\x00" in chunk:
                raise _BodyRejected(validation("body", "Request body must not contain NUL bytes"))
        return message

    return guarded


def _reject_body(scope: Scope) -> AppError | None:
    if scope["method"] not in _BODY_METHODS:
        return None
    length = _header(scope, b"content-length")
    chunked = _header(scope, b"transfer-encoding") is not None
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return AppError(ErrorCode.PAYLOAD_TOO_LARGE, "Request body is larger than 64 KiB")
    if not chunked and (length is None or length == "0"):
        return None
    kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    wanted = "application/x-www-form-urlencoded" if scope["path"] in _FORM_PATHS else "application/json"
    if kind != wanted:
        return AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {wanted}")
    return None


def _label(location: tuple[int | str, ...]) -> str:
    names = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(names) or "body"


_PATTERN_REASONS = {NO_NUL: "must not contain NUL characters", NO_CONTROL: "must not contain control characters"}


def _validation_errors(exc: RequestValidationError) -> AppError:
    errors = []
    for error in exc.errors():
        field = _label(tuple(error.get("loc", ())))
        if error["type"] == "json_invalid":
            return AppError(
                ErrorCode.VALIDATION,
                "Request body is not valid JSON",
                errors=[{"field": "body", "message": "Malformed JSON"}],
            )
        words = field.replace("_", " ").capitalize()
        reason = str(error["msg"]).removeprefix("Value error, ")
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in _PATTERN_REASONS:
            reason = _PATTERN_REASONS[pattern]
        message = f"{words} is required" if error["type"] == "missing" else f"{words}: {reason}"
        errors.append({"field": field, "message": message.removesuffix(".")})
    return AppError(ErrorCode.VALIDATION, errors[0]["message"] if errors else "Invalid request", errors=errors)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on the path: Starlette's own ``Allow`` names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def _install_handlers(app: FastAPI) -> None:
    async def app_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, AppError):
            raise exc
        if exc.status >= 500:
            log.warning("unavailable", extra={"cause": type(exc.__cause__).__name__})
        return failure(exc)

    async def invalid(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        return failure(_validation_errors(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        if isinstance(exc, _BodyRejected):
            return failure(exc.error)
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, ErrorCode.VALIDATION)
        message = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Bad request")
        response = failure(AppError(code, message))
        response.status_code = exc.status_code if exc.status_code < 500 else 400
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request)  # RFC 9110 §15.5.6
        return response

    async def crash(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return server_error()

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crash)


def create_app(ctx: Context) -> ASGIApp:
    """The service as an ASGI app: the FastAPI application inside the request pipeline, and CORS around both
    (so the pipeline's own answers, a 413 or a 500, reach a listed front end too) when origins are listed."""
    app = Pipeline(_fastapi(ctx))
    origins = ctx.settings.cors_allowed_origins
    return Cors(app, origins) if origins else app


def _fastapi(ctx: Context) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ctx.start()
        job = asyncio.create_task(run_schedule(ctx)) if ctx.settings.cleanup_schedule.lower() != "off" else None
        yield
        if job is not None:
            job.cancel()
        logs.access.flush()  # first: a failing close must not lose the last lines
        await ctx.close()

    app = FastAPI(
        title="sessionward",
        version="0.1.0",
        description="Short-lived access tokens, rotating refresh tokens, per-device sessions.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # Prometheus is this service's metrics; FastAPI's OpenTelemetry check alone cost 10 µs per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.ctx = ctx
    _install_handlers(app)
    routers = (
        tokens_router,
        users_router,
        mail_router,
        sessions_router,
        mfa_router,
        passkeys_router,
        audit_router,
        admin_router,
        apps_router,
        web_router,
    )
    for router in routers:
        # The routes join the app's own table as they are (each router's prefix and tags are in them already):
        # FastAPI matches an included router twice per request, once for the router and once for its route.
        app.router.routes.extend(router.routes)
    _operational_routes(app, ctx)
    app.router.routes.sort(key=_hot_first)  # stable: routes of one path keep their order
    _document(app)
    return app


# The paths every client calls most, in that order. Routes are tried one by one (about 1 µs each), and these
# share no request with another path's pattern, so trying them first changes no answer.
_HOT_PATHS = ("/api/v1/auth/me", "/api/v1/auth/refresh")


def _hot_first(route: BaseRoute) -> int:
    path = getattr(route, "path", None)
    return _HOT_PATHS.index(path) if path in _HOT_PATHS else len(_HOT_PATHS)


def _document(app: FastAPI) -> None:
    """What FastAPI's generated document gets wrong here: it documents a 422 for every validated operation,
    while this service answers validation errors with 400 (API.md), which every operation documents already;
    and it cannot see the bearer scheme, whose header ``deps.principal`` reads itself."""
    generate = app.openapi
    authenticated = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, APIRoute) and _calls(route.dependant, deps.principal)
        for method in route.methods or ()
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                operation.get("responses", {}).pop("422", None)
                if (path, method) in authenticated:
                    operation.update(deps.SECURED)
        components = schema.setdefault("components", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(name, None)
        components.setdefault("securitySchemes", {})[deps.BEARER.scheme_name] = deps.BEARER.model.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _calls(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return dependant.call is call or any(_calls(sub, call) for sub in dependant.dependencies)


def _operational_routes(app: FastAPI, ctx: Context) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSON:
        return JSON({"status": "ok"})

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "Database unreachable"}})
    async def readyz() -> JSON:
        if await ctx.db.ping():
            return JSON({"status": "ok"})
        return JSON(
            {"status": "error", "message": "Database unreachable"}, status_code=503, headers={"Retry-After": "2"}
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def scrape() -> Response:
        async with ctx.db.read() as conn:
            pending = await outbox_store.pending(conn)
        families = metrics.outbox_families(pending, ctx.clock.now())
        return Response(metrics.render(families), media_type=metrics.CONTENT_TYPE)


def factory(settings: Settings | None = None) -> ASGIApp:
    """What ``sessionward serve`` runs in each worker."""
    settings = settings or load_settings()
    logs.configure(settings.log_level)
    return create_app(Context.build(settings))
