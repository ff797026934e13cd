"""Python client for sessionward: sign in, automatic single-flight refresh, token stores, token verification.

Only ``httpx`` is required; ``verify_access_token`` needs the ``jwt`` extra. Never imports the server.
"""

from sessionward_client._asgi import AccessTokenMiddleware, access_token_dependency
from sessionward_client._auth import DEFAULT_USER_AGENT, SessionwardAuth
from sessionward_client._client import AsyncSessionwardClient, SessionwardClient
from sessionward_client._errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidAccessToken,
    InvalidCredentials,
    NotFound,
    NotSignedIn,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SessionRevoked,
    SessionwardError,
    StepUpRequired,
    Unauthorized,
    ValidationFailed,
)
from sessionward_client._models import (
    DeviceInfo,
    Event,
    LoginResult,
    MfaRequired,
    Session,
    SessionList,
    TokenSet,
    User,
)
from sessionward_client._revocations import RevocationSubscription
from sessionward_client._stores import FileTokenStore, MemoryTokenStore, TokenStore
from sessionward_client._verify import AccessTokenClaims, AccessTokenVerifier, verify_access_token
from sessionward_client._version import __version__

__all__ = [
    "DEFAULT_USER_AGENT",
    "AccessTokenClaims",
    "AccessTokenMiddleware",
    "AccessTokenVerifier",
    "AsyncSessionwardClient",
    "Conflict",
    "DeviceInfo",
    "Event",
    "FieldError",
    "FileTokenStore",
    "Forbidden",
    "InvalidAccessToken",
    "InvalidCredentials",
    "LoginResult",
    "MemoryTokenStore",
    "MfaRequired",
    "NotFound",
    "NotSignedIn",
    "RateLimited",
    "RevocationSubscription",
    "ServerError",
    "ServiceUnavailable",
    "Session",
    "SessionList",
    "SessionRevoked",
    "SessionwardAuth",
    "SessionwardClient",
    "SessionwardError",
    "StepUpRequired",
    "TokenSet",
    "TokenStore",
    "Unauthorized",
    "User",
    "ValidationFailed",
    "__version__",
    "access_token_dependency",
    "verify_access_token",
]
