"""``sessionward`` command line: serve, migrate, cleanup, users create / import, keys rotate, mail test,
service-keys."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from sessionward.clock import Clock
from sessionward.config import ConfigError, Settings, load_settings
from sessionward.errors import AppError
from sessionward.tokens.keys import KeysError, load_keys, rotate_keys

if TYPE_CHECKING:
    from sessionward.apps.importing import Summary
    from sessionward.context import Context

T = TypeVar("T")
app = typer.Typer(help="sessionward: refresh-token and session service.", no_args_is_help=True, add_completion=False)
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage signing keys.", no_args_is_help=True)
mail_app = typer.Typer(help="Account email.", no_args_is_help=True)
service_keys_app = typer.Typer(help="Keys of an app's own backend (scoped; shown once).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(mail_app, name="mail")
app.add_typer(service_keys_app, name="service-keys")


def _fail(message: str) -> NoReturn:
    typer.echo(f"sessionward: {message}", err=True)
    raise typer.Exit(2)


def _database_error(exc: Exception) -> str:
    """One line for an operator: the driver's own first line (a connection or DDL error, no secrets)."""
    from sqlalchemy.exc import DBAPIError

    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"database error: {(str(cause).splitlines() or [type(cause).__name__])[0]}"


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the API (migrating first when AUTO_MIGRATE=true)."""
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from sessionward import logs, metrics, serving
    from sessionward.migrations import upgrade_sync

    settings = _settings()
    logs.configure(settings.log_level)
    try:
        load_keys(settings, now=Clock().now())  # once, before workers start: they must share one key
        if settings.auto_migrate:
            upgrade_sync(settings.database_url)
    except (KeysError, AppError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(_database_error(exc))
    base = f"http://{host}:{port}"
    typer.echo(f"sessionward on {base}  API {base}/api/v1/auth  docs {base}/docs  health {base}/healthz")
    with serving.loop_and_protocol(workers) as (loop, http), metrics.shared_folder(workers):
        uvicorn.run(
            "sessionward.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop=loop,
            http=http,
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
            timeout_graceful_shutdown=5,
        )


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    from sqlalchemy.exc import SQLAlchemyError

    from sessionward.migrations import upgrade_sync

    settings = _settings()
    try:
        upgrade_sync(settings.database_url)
    except AppError as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(_database_error(exc))
    typer.echo("database is up to date")


@app.command()
def cleanup() -> None:
    """Delete expired and revoked rows now (for cron); prints the count per table."""
    from sessionward.context import Context
    from sessionward.jobs.cleanup import cleanup as run_cleanup

    settings = _settings()

    def progress(table: str, done: int) -> None:
        typer.echo(f"\r{table}: {done}", nl=False, err=True)

    async def main() -> dict[str, int] | None:
        ctx = Context.build(settings)
        try:
            return await run_cleanup(ctx, progress=progress)
        finally:
            await ctx.close()

    try:
        counts = asyncio.run(main())
    except AppError as exc:
        _fail(str(exc))
    typer.echo("", err=True)
    if counts is None:
        typer.echo("cleanup skipped: another instance is running it")
        return
    for table, count in counts.items():
        typer.echo(f"{table}: {count}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The account's email.")],
    password: Annotated[str | None, typer.Option(help="Prompted for when not given.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    verified: Annotated[bool, typer.Option("--verified", help="Mark the email verified.")] = False,
) -> None:
    """Create a user account."""
    from sessionward.context import Context
    from sessionward.users import service
    from sessionward.users.models import Role, normalise_email

    settings = _settings()
    try:
        address = normalise_email(email)
    except ValueError as exc:
        _fail(str(exc))
    if password is None:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            _fail("passwords do not match")

    async def main() -> dict[str, object]:
        ctx = Context.build(settings)
        try:
            role = Role.ADMIN if admin else Role.USER
            return await service.create(ctx, email=address, password=password, name=name, role=role, verified=verified)
        finally:
            await ctx.close()

    try:
        user = asyncio.run(main())
    except AppError as exc:
        _fail(exc.message)
    typer.echo(f"created user {user['id']} <{user['email']}> role={user['role']}")


@users_app.command("import")
def users_import(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="JSON Lines, one user a line (README: Importing users).")
    ],
    update: Annotated[bool, typer.Option("--update", help="Replace users whose email exists (else skipped).")] = False,
) -> None:
    """Import users with their password hashes (argon2, bcrypt, Django, Werkzeug); bad lines are reported."""
    from sqlalchemy.exc import SQLAlchemyError

    from sessionward.apps.importing import Summary

    settings = _settings()
    try:
        stream = file.open("rb")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
    summary = Summary()
    with stream:
        try:
            _run_import(settings, stream, update=update, summary=summary)
        except (AppError, SQLAlchemyError, OSError) as exc:
            typer.echo(f"{summary} before it stopped; run it again to go on (imported emails are skipped)")
            _fail(_import_error(file, exc))
    typer.echo(str(summary))


def _run_import(settings: Settings, stream: IO[bytes], *, update: bool, summary: Summary) -> None:
    from sessionward.apps.importing import import_users
    from sessionward.context import Context

    tty = sys.stderr.isatty()
    clear = "\r\033[K" if tty else ""  # the progress bar's line, before a rejected line is printed

    def reject(number: int, reason: str) -> None:
        typer.echo(f"{clear}line {number}: {reason}", err=True)

    async def main(progress: Callable[[], None]) -> None:
        ctx = Context.build(settings)
        try:
            await import_users(ctx, stream, update=update, summary=summary, reject=reject, progress=progress)
        finally:
            await ctx.close()

    if not tty:
        asyncio.run(main(lambda: None))
        return
    size = os.fstat(stream.fileno()).st_size
    with typer.progressbar(length=size, label="importing", file=sys.stderr) as bar:
        asyncio.run(main(lambda: bar.update(stream.tell() - bar.pos)))


def _import_error(file: Path, exc: Exception) -> str:
    if isinstance(exc, AppError):
        return exc.message
    if isinstance(exc, OSError):
        return f"cannot read {file}: {exc.strerror or type(exc).__name__}"
    return _database_error(exc)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """New signing key; the old public key stays in the JWKS until its tokens have expired."""
    settings = _settings()
    try:
        new, old = rotate_keys(settings, now=Clock().now())
    except KeysError as exc:
        _fail(str(exc))
    typer.echo(f"active key {new}" + (f"; {old} stays published until its tokens expire" if old else ""))


def _in_context(settings: Settings, work: Callable[[Context], Awaitable[T]]) -> T:
    """Runs ``work`` with a context of its own, closed after; a database fault is one line, exit 2."""

    from sessionward.context import Context

    async def main() -> T:
        ctx = Context.build(settings)
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    try:
        return asyncio.run(main())
    except AppError as exc:
        _fail(exc.message)


@service_keys_app.command("create")
def service_keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the app's name.")],
    scope: Annotated[list[str], typer.Option(help="A scope; repeat for several.")],
) -> None:
    """Make a key; it is printed once and stored only hashed."""
    from sessionward.apps import keys

    try:
        scopes = [keys.Scope(value) for value in scope]
    except ValueError:
        _fail(f"unknown scope; choose from {', '.join(keys.Scope)}")
    if not 1 <= len(name.strip()) <= 100:
        _fail("the name must be 1 to 100 characters")
    made: tuple[str, dict[str, Any]] = _in_context(
        _settings(), lambda ctx: keys.create(ctx, name=name.strip(), scopes=scopes)
    )
    key, record = made
    typer.echo(f"created service key {record['id']} ({record['name']}): {' '.join(record['scopes'])}", err=True)
    typer.echo("it is shown this once; keep it secret:", err=True)
    typer.echo(key)


@service_keys_app.command("list")
def service_keys_list() -> None:
    """Every key: id, name, scopes, when made, whether revoked."""
    from sessionward.apps import keys

    listed: list[dict[str, Any]] = _in_context(_settings(), keys.listed)
    for record in listed:
        state = f"revoked {record['revoked_at']}" if record["revoked_at"] else "active"
        typer.echo(f"{record['id']}\t{record['name']}\t{' '.join(record['scopes'])}\t{record['created_at']}\t{state}")


@service_keys_app.command("revoke")
def service_keys_revoke(key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (see list).")]) -> None:
    """Revoke a key: it is refused from the next request on."""
    from sessionward.apps import keys

    if not _in_context(_settings(), lambda ctx: keys.revoke(ctx, key_id)):
        _fail(f"no active service key {key_id}")
    typer.echo(f"revoked service key {key_id}")


@mail_app.command("test")
def mail_test(to: Annotated[str, typer.Option("--to", help="The address to send the test mail to.")]) -> None:
    """Send one mail through the configured transport (SMTP_URL, or files) and say what happened."""
    from sessionward.mail.delivery import test_message
    from sessionward.mail.transport import Refused, Unreachable, transport_for
    from sessionward.users.models import normalise_email

    settings = _settings()
    try:
        address = normalise_email(to)
    except ValueError as exc:
        _fail(str(exc))
    transport = transport_for(settings)

    async def main() -> str:
        async with transport.session() as session:
            return await session.send(test_message(settings, to=address, now=Clock().now()))

    try:
        reply = asyncio.run(main())
    except (Refused, Unreachable) as exc:
        _fail(f"not sent via {transport.description}: {exc}")
    typer.echo(f"sent to {address} via {transport.description}: {reply}")


def _thread_error(args: threading.ExceptHookArgs) -> None:
    # aiosqlite's worker thread may answer a failed connection after asyncio.run closed the loop;
    # the command has already said what went wrong in one line, so that late echo is dropped.
    if args.exc_type is RuntimeError and "Event loop is closed" in str(args.exc_value):
        return
    typer.echo(f"sessionward: error in a background thread ({args.exc_type.__name__})", err=True)


def main() -> None:
    threading.excepthook = _thread_error
    app(prog_name="sessionward")
