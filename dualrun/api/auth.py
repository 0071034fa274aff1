"""Bearer tokens (RFC 6750): a read token for reads, the write token for everything.

`DUALRUN_API_READ_TOKEN` reads; `DUALRUN_API_TOKEN` writes and reads. Missing or unknown
token: 401; the read token on a mutating call: 403. A call whose token is not configured on
the server is refused with 503 rather than left open. A presented token is hashed and compared
with every configured one in constant time (`hmac.compare_digest` on SHA-256 digests: neither
the content nor the length of a token shows in the timing); no token is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import IntEnum
from typing import Annotated, Any

import structlog
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dualrun.api.errors import ApiError, documented
from renewals.env import Secret
from renewals.settings import Settings

log = structlog.get_logger(__name__)
READ_SCHEME = "readToken"
WRITE_SCHEME = "writeToken"
read_bearer = HTTPBearer(
    scheme_name=READ_SCHEME,
    auto_error=False,
    description="`DUALRUN_API_READ_TOKEN`: reads only (a mutating call with it is refused, 403)",
)
write_bearer = HTTPBearer(
    scheme_name=WRITE_SCHEME,
    auto_error=False,
    description="`DUALRUN_API_TOKEN`: every call, reads included",
)
Credentials = HTTPAuthorizationCredentials | None


class Access(IntEnum):
    """What a presented token grants; a higher grant includes the lower ones."""

    NONE = 0
    READ = 1
    WRITE = 2


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


_UNSET = secrets.token_bytes(32)  # what an unconfigured token is compared with: nothing matches


def _matches(presented: bytes, configured: Secret | None) -> bool:
    value = configured.reveal() if configured is not None else ""
    expected = _digest(value) if value else _UNSET
    return hmac.compare_digest(presented, expected) and bool(value)


def grant(settings: Settings, token: str) -> Access:
    """The access `token` grants: compared with both configured tokens, always both."""
    presented = _digest(token)
    is_write = _matches(presented, settings.api_token)
    is_read = _matches(presented, settings.api_read_token)
    return Access.WRITE if is_write else Access.READ if is_read else Access.NONE


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="dualrun"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


def _refuse_unconfigured(settings: Settings, needed: Access) -> None:
    if needed == Access.WRITE:
        if not _set(settings.api_token):
            message = "DUALRUN_API_TOKEN is not set on the server: mutating calls are refused"
            raise ApiError(503, "auth_not_configured", message)
    elif not (_set(settings.api_token) or _set(settings.api_read_token)):
        message = (
            "neither DUALRUN_API_READ_TOKEN nor DUALRUN_API_TOKEN is set on the server:"
            " reads are refused"
        )
        raise ApiError(503, "auth_not_configured", message)


def _set(token: Secret | None) -> bool:
    return token is not None and bool(token.reveal())


def _refuse(request: Request, status: int, code: str, message: str) -> ApiError:
    """The refusal, logged (method, path and why: never the token)."""
    log.warning(
        "api.auth.refused",
        method=request.method,
        path=request.url.path,
        status=status,
        code=code,
    )
    error = None if code == "unauthorized" else code
    return ApiError(status, code, message, None, _challenge(error))


def _check(request: Request, credentials: Credentials, needed: Access) -> None:
    settings: Settings = request.app.state.settings
    _refuse_unconfigured(settings, needed)
    if credentials is None or not credentials.credentials:
        raise _refuse(request, 401, "unauthorized", "a bearer token is required")
    granted = grant(settings, credentials.credentials)
    if granted == Access.NONE:
        raise _refuse(request, 401, "invalid_token", "the bearer token is not valid")
    if granted < needed:
        message = "the read token cannot make changes: use the write token"
        raise _refuse(request, 403, "insufficient_scope", message)


# async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per call
async def require_read(
    request: Request,
    read: Annotated[Credentials, Security(read_bearer)],
    write: Annotated[Credentials, Security(write_bearer)],
) -> None:
    """A read: the read token or the write token (both schemes parse the same header)."""
    _check(request, read or write, Access.READ)


async def require_write(
    request: Request, write: Annotated[Credentials, Security(write_bearer)]
) -> None:
    """A mutating call: the write token only."""
    _check(request, write, Access.WRITE)


def auth_responses(needed: Access) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses the token check can give, for an operation's `responses`."""
    codes = (401, 403, 503) if needed == Access.WRITE else (401, 503)
    return {code: documented(code) for code in codes}
