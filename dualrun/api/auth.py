"""Bearer-token auth for mutating calls (DUALRUN_API_TOKEN, compared in constant time).

A missing or wrong token is 401 (RFC 6750). No token configured: mutating calls are refused
(503) rather than left open.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dualrun.api.errors import ApiError

bearer = HTTPBearer(auto_error=False, description="DUALRUN_API_TOKEN, as a bearer token")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dualrun"'}


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    configured = request.app.state.settings.api_token
    if configured is None or not configured.reveal():
        raise ApiError(
            503,
            "auth_not_configured",
            "DUALRUN_API_TOKEN is not set on the server: mutating calls are refused",
        )
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthorized", "a bearer token is required", None, _CHALLENGE)
    given = credentials.credentials.encode()
    if not hmac.compare_digest(given, configured.reveal().encode()):
        challenge = {"WWW-Authenticate": 'Bearer realm="dualrun", error="invalid_token"'}
        raise ApiError(401, "invalid_token", "the bearer token is not valid", None, challenge)
