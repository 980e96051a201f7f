"""FastAPI dependencies: the running state, and the token guard for catalog changes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lookalike.api.state import AppState

bearer = HTTPBearer(auto_error=False, description="LOOKALIKE_API_TOKEN, for catalog changes")


def get_state(request: Request) -> AppState:
    return request.app.state.lookalike  # type: ignore[no-any-return]


State = Annotated[AppState, Depends(get_state)]


def require_token(state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """401 without a token, 403 with a wrong one (compared in constant time), 403 when writes are disabled."""
    expected = state.settings.api_token
    if expected is None or not expected.get_secret_value():
        raise HTTPException(status.HTTP_403_FORBIDDEN, "catalog changes are disabled: set LOOKALIKE_API_TOKEN")
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.credentials.encode(), expected.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")


WriteAccess = Depends(require_token)
