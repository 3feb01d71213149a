"""Who changes the registry, as recorded in the alias history.

Locally that is the operating-system user (``user:alice@host``); on a team server it is the
token (``token:<id> (<name>)``), decided by the server, never by what a client claims.
``admin`` is the authority the actor may use for protected aliases: an admin token, or a
local user who asked for it explicitly (``--admin``), which the history records.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    name: str
    admin: bool = False


def local_user(admin: bool = False) -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return Actor(f"user:{user}@{socket.gethostname()}", admin)
