"""Signing in and out of the web UI, who the caller is, and the health check.

    GET    /api/health   {"status": "ok", "version": ...}; no token needed
    GET    /api/whoami   what the caller's token grants (never 401)
    POST   /api/session  {"token": "..."}: checks the token and keeps it in an HttpOnly cookie
    DELETE /api/session  forgets the cookie
    GET    /PAGE?token=  a sign-in link (what `tympan ui` prints and opens): the same cookie,
                         then a redirect to the same page without the token (``link_sign_in``)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from tympan import __version__
from tympan.server.auth import Principal, authenticate, cookie_name, identify
from tympan.server.errors import HTTPError

router = APIRouter(prefix="/api", tags=["session"])


class SessionRequest(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="a token from "
                                                                   "`tympan token create`")


class Health(BaseModel):
    status: str
    version: str


class WhoAmI(BaseModel):
    auth_required: bool = Field(description="always true: no request is anonymous")
    launch_link: bool = Field(description="whether the server printed a sign-in link with "
                                          "its per-launch token (`tympan ui`)")
    authenticated: bool
    token_id: str | None = None
    name: str | None = None
    scope: str | None = None
    project: str | None = None
    reason: str | None = None


def _who(request: Request, principal: Principal | None, reason: str | None = None
         ) -> dict[str, Any]:
    base = {"auth_required": True,
            "launch_link": request.app.state.config.launch_token is not None}
    if principal is None:
        return {**base, "authenticated": False, "reason": reason}
    return {**base, "authenticated": True, "token_id": principal.token_id,
            "name": principal.name or None, "scope": principal.scope,
            "project": principal.project}


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    """The server is up (needs no token)."""
    return {"status": "ok", "version": __version__}


@router.get("/whoami", response_model=WhoAmI)
def whoami(request: Request) -> dict[str, Any]:
    """What the caller's token grants.

    Never 401: without a usable token it answers ``authenticated: false`` (with the
    ``reason`` when a token came but was invalid or revoked), so the UI knows to ask for one.
    """
    try:
        return _who(request, authenticate(request))
    except HTTPError as exc:
        if exc.status_code != 401:
            raise
        return _who(request, None, exc.detail)


@router.post("/session", response_model=WhoAmI)
def sign_in(body: SessionRequest, request: Request, response: Response) -> dict[str, Any]:
    """Check a token and keep it in the session cookie (HttpOnly, SameSite=Strict)."""
    text = body.token.strip()
    principal = identify(request, text)
    keep_in_cookie(request, response, text)
    return _who(request, principal)


@router.delete("/session", response_model=WhoAmI)
def sign_out(request: Request, response: Response) -> dict[str, Any]:
    """Forget the session cookie."""
    response.delete_cookie(cookie_name(request), path="/", httponly=True, samesite="strict")
    return _who(request, None)


def keep_in_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(cookie_name(request), token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")


def link_sign_in(request: Request) -> Response | None:
    """For a page opened with ``?token=``: the redirect to the same page without it, setting
    the session cookie when the token is good (else the page asks for one). None when the
    URL carries no token. The token leaves the address bar, history and Referer at once."""
    if "token" not in request.query_params:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    target = request.url.path + (f"?{urlencode(params)}" if params else "")
    response = RedirectResponse(target, status_code=303, headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    try:
        identify(request, request.query_params["token"].strip())
    except HTTPError:
        return response
    keep_in_cookie(request, response, request.query_params["token"].strip())
    return response
