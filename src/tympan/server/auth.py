"""Who is asking: the ``require(scope)`` dependency turns a token into a Principal.

The token comes as ``Authorization: Bearer <token>`` or as the ``tympan_token`` cookie that
``POST /api/session`` sets (an ``<audio src>`` cannot send headers). Scopes nest:
admin ⊃ write ⊃ read. A token bound to a project sees only that project; anything of another
project answers 404, exactly like something that does not exist, so names do not leak.
With auth off (``tympan ui`` on loopback) every request is an admin of every project.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from tympan.errors import NotFoundError
from tympan.server.errors import HTTPError
from tympan.store import tokens

COOKIE = "tympan_token"
Scope = Literal["read", "write", "admin"]


@dataclass(frozen=True)
class Principal:
    """The holder of a request's token: its id (None with auth off), scope and project."""

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


ANONYMOUS_ADMIN = Principal(token_id=None, scope="admin", project=None)


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise HTTPError(401, "the Authorization header must be 'Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
        return value.strip()
    return request.cookies.get(COOKIE) or None


def authenticate(request: Request) -> Principal | None:
    """The request's principal; None when auth is on and no token came with it."""
    if not request.app.state.config.auth:
        return ANONYMOUS_ADMIN
    text = token_from(request)
    if text is None:
        return None
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
