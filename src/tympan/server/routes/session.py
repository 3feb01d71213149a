"""Signing in and out of the web UI, who the caller is, and the health check.

    GET    /api/health   {"status": "ok", "version": ...}; no token needed
    GET    /api/whoami   whether the server wants a token, and what the caller's token grants
    POST   /api/session  {"token": "..."}: checks the token and keeps it in an HttpOnly cookie
    DELETE /api/session  forgets the cookie
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tympan import __version__
from tympan.server.auth import COOKIE, Principal, authenticate
from tympan.server.errors import HTTPError
from tympan.store import tokens

router = APIRouter(prefix="/api", tags=["session"])


class SessionRequest(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="a token from "
                                                                   "`tympan token create`")


class Health(BaseModel):
    status: str
    version: str


class WhoAmI(BaseModel):
    auth_required: bool
    authenticated: bool
    token_id: str | None = None
    name: str | None = None
    scope: str | None = None
    project: str | None = None
    reason: str | None = None


def _who(principal: Principal | None, auth_required: bool) -> dict[str, Any]:
    if principal is None:
        return {"auth_required": auth_required, "authenticated": False}
    return {"auth_required": auth_required, "authenticated": True,
            "token_id": principal.token_id, "name": principal.name or None,
            "scope": principal.scope, "project": principal.project}


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    """The server is up (needs no token)."""
    return {"status": "ok", "version": __version__}


@router.get("/whoami", response_model=WhoAmI)
def whoami(request: Request) -> dict[str, Any]:
    """Whether this server requires a token, and the scope and project of the caller's.

    Never 401: without a usable token it answers ``authenticated: false`` (with the
    ``reason`` when a token came but was invalid or revoked), so the UI knows to ask for one.
    """
    auth_required = request.app.state.config.auth
    try:
        return _who(authenticate(request), auth_required)
    except HTTPError as exc:
        if exc.status_code != 401:
            raise
        return {"auth_required": auth_required, "authenticated": False, "reason": exc.detail}


@router.post("/session", response_model=WhoAmI)
def sign_in(body: SessionRequest, request: Request, response: Response) -> dict[str, Any]:
    """Check a token and keep it in the ``tympan_token`` cookie (HttpOnly, SameSite=Strict)."""
    config = request.app.state.config
    if not config.auth:
        return _who(authenticate(request), False)
    with request.app.state.store.read() as conn:
        token = tokens.verify(conn, body.token.strip())
    if token is None:
        raise HTTPError(401, "invalid token: create one with `tympan token create`")
    if token.revoked:
        raise HTTPError(401, f"token {token.id} was revoked")
    response.set_cookie(COOKIE, body.token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    principal = Principal(token.id, token.scope, token.project, token.name)
    return _who(principal, True)


@router.delete("/session", response_model=WhoAmI)
def sign_out(request: Request, response: Response) -> dict[str, Any]:
    """Forget the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return {"auth_required": request.app.state.config.auth, "authenticated": False}
