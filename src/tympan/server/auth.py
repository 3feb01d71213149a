"""Who is asking: the ``require(scope)`` dependency turns a token into a Principal.

The token comes as ``Authorization: Bearer <token>`` or as the session cookie that
``POST /api/session`` (or a ``?token=`` sign-in link) sets: an ``<audio src>`` cannot send
headers. A token is either one of the store's (``tympan token create``; scopes nest
admin ⊃ write ⊃ read, and a token bound to a project sees only that project: anything of
another project answers 404, exactly like something that does not exist) or ``tympan ui``'s
per-launch secret, an admin of every project. No request is anonymous, even on loopback:
other users of the machine can reach 127.0.0.1 too.

A request's principal is worked out once: the body guard may do it before the body is read
(see ``guard.py``) and leaves it in the request's state for the route's dependency.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from tympan.errors import NotFoundError
from tympan.server.errors import HTTPError
from tympan.store import tokens

COOKIE = "tympan_token"  # + "_PORT": two servers on one host keep their own cookies
LAUNCH_NAME = "tympan ui"
_RESULT = "tympan_principal"  # the request state's key for the worked-out principal
Scope = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Principal:
    """The holder of a request's token: its id (None for `tympan ui`'s launch token), scope
    and project."""

    token_id: str | None
    scope: str
    project: str | None
    name: str = ""

    def allows(self, scope: str) -> bool:
        return tokens.scope_allows(self.scope, scope)

    def can_see(self, project: str) -> bool:
        return self.project is None or self.project == project

    def check_project(self, project: str, message: str = "not found") -> None:
        """Raise a 404 NotFoundError unless this principal may see ``project``.

        Pass the same message the route gives for a thing that does not exist, so a
        project-bound token cannot tell "elsewhere" from "nowhere".
        """
        if not self.can_see(project):
            raise NotFoundError(message)

    def projects_filter(self) -> str | None:
        """The only project this principal may see, or None for all of them."""
        return self.project


LAUNCH_ADMIN = Principal(token_id=None, scope="admin", project=None, name=LAUNCH_NAME)


def cookie_name(request: Request) -> str:
    """The session cookie's name: per port, as cookies are shared by every port of a host."""
    server = request.scope.get("server") or (None, None)
    return f"{COOKIE}_{server[1]}" if server[1] else COOKIE


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise HTTPError(401, "the Authorization header must be 'Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
        return value.strip()
    return request.cookies.get(cookie_name(request)) or None


def identify(request: Request, text: str) -> Principal:
    """The principal ``text`` (a token) stands for; 401 if it stands for none."""
    config = request.app.state.config
    launch = config.launch_token
    if launch and hmac.compare_digest(text.encode(), launch.encode()):
        return LAUNCH_ADMIN
    if not config.auth:
        raise HTTPError(401, "invalid token: open the URL `tympan ui` printed when it "
                             "started (it carries this launch's token)",
                        headers={"WWW-Authenticate": "Bearer"})
    store = request.app.state.store
    with store.read() as conn:
        token = tokens.verify(conn, text)
    if token is None:
        raise HTTPError(401, "invalid token: create one with `tympan token create`",
                        headers={"WWW-Authenticate": "Bearer"})
    if token.revoked:
        raise HTTPError(401, f"token {token.id} was revoked",
                        headers={"WWW-Authenticate": "Bearer"})
    now = time.time()
    if token.last_used_at is None or now - token.last_used_at >= tokens.TOUCH_EVERY:
        with store.write() as conn:
            tokens.touch(conn, token, now)
    return Principal(token.id, token.scope, token.project, token.name)


def authenticate(request: Request) -> Principal | None:
    """The request's principal; None when no token came with it; 401 for a bad token.

    Worked out once per request (blocking: it may read the store) and kept in its state.
    """
    state = request.scope.setdefault("state", {})
    if _RESULT not in state:
        try:
            text = token_from(request)
            state[_RESULT] = None if text is None else identify(request, text)
        except HTTPError as exc:
            state[_RESULT] = exc
    result = state[_RESULT]
    if isinstance(result, HTTPError):
        raise result
    return result


def known_principal(request: Request) -> Principal | None:
    """The principal if it was already worked out for this request (for the access log)."""
    result = request.scope.get("state", {}).get(_RESULT)
    return result if isinstance(result, Principal) else None


def require(scope: Scope) -> Callable[[Request], Principal]:
    """A dependency giving the request's Principal if it holds ``scope``, else 401/403."""
    if scope not in ("read", "write", "admin"):
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if principal is None:
            raise HTTPError(401, "this server requires a token: send 'Authorization: Bearer "
                                 "<token>' or sign in with POST /api/session",
                            headers={"WWW-Authenticate": "Bearer"})
        if not principal.allows(scope):
            raise HTTPError(403, f"this needs a token with scope {scope}; yours has scope "
                                 f"{principal.scope}")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
