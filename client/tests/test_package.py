"""The package as users get it: a curated public surface, httpx only, typed, never the server's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import sessionward_client

PACKAGE = Path(sessionward_client.__file__).parent
CLIENT = Path(__file__).resolve().parents[1]

PUBLIC = {
    # clients and the httpx auth
    "SessionwardClient",
    "AsyncSessionwardClient",
    "SessionwardAuth",
    "DEFAULT_USER_AGENT",
    # results
    "User",
    "LoginResult",
    "MfaRequired",
    "Session",
    "SessionList",
    "DeviceInfo",
    "Event",
    "TokenSet",
    # token stores
    "TokenStore",
    "MemoryTokenStore",
    "FileTokenStore",
    # errors
    "SessionwardError",
    "NotSignedIn",
    "ValidationFailed",
    "FieldError",
    "Unauthorized",
    "InvalidCredentials",
    "SessionRevoked",
    "Forbidden",
    "StepUpRequired",
    "NotFound",
    "Conflict",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "InvalidAccessToken",
    # resource servers
    "verify_access_token",
    "AccessTokenVerifier",
    "AccessTokenClaims",
    "RevocationSubscription",
    "AccessTokenMiddleware",
    "access_token_dependency",
    "__version__",
}


def test_the_public_names_are_exactly_the_curated_all() -> None:
    assert set(sessionward_client.__all__) == PUBLIC
    assert len(sessionward_client.__all__) == len(PUBLIC)
    exposed = {name for name in vars(sessionward_client) if not name.startswith("_")}
    assert exposed == PUBLIC - {"__version__"}, "a public name that is not in __all__ (or a public submodule)"
    assert all(path.name.startswith("_") for path in PACKAGE.glob("*.py")), "modules are private: import the package"


def test_every_error_is_a_sessionward_error() -> None:
    errors = [getattr(sessionward_client, name) for name in PUBLIC if name not in {"FieldError", "__version__"}]
    errors = [cls for cls in errors if isinstance(cls, type) and issubclass(cls, Exception)]
    assert len(errors) == 14
    assert all(issubclass(cls, sessionward_client.SessionwardError) for cls in errors)


def test_the_client_source_never_imports_the_server() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [name for name in names if name.split(".")[0] == "sessionward"], path


def test_importing_and_using_the_client_loads_no_server_module() -> None:
    code = (
        "import sys, sessionward_client\n"
        "c = sessionward_client.SessionwardClient('http://127.0.0.1:9')\n"
        "c.close()\n"
        "sys.exit(sorted(m for m in sys.modules if m.split('.')[0] == 'sessionward') or None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_distribution_depends_on_httpx_only_and_pyjwt_is_an_extra() -> None:
    requires = metadata.requires("sessionward-client") or []
    required = [r for r in requires if "extra ==" not in r]
    extras = [r for r in requires if "extra ==" in r]
    assert [r.split(">")[0].split("=")[0].strip() for r in required] == ["httpx"]
    assert len(extras) == 1
    assert extras[0].startswith("pyjwt[crypto]")
    assert 'extra == "jwt"' in extras[0]
    assert metadata.version("sessionward-client") == sessionward_client.__version__


def test_the_package_is_marked_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_the_client_and_code_using_it_pass_mypy_strict() -> None:
    pytest.importorskip("mypy")
    targets = [str(PACKAGE), *map(str, sorted((CLIENT / "examples").glob("*.py")))]
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *targets],
        cwd=CLIENT,  # its pyproject.toml: mypy_path = src
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
