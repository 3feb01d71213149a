"""Which ``Host`` headers the server answers: a defence against DNS rebinding.

A web page on ``attacker.example`` can make its own name resolve to 127.0.0.1 and then talk
to a server on this machine as if it were same-origin. The browser still sends
``Host: attacker.example``, so a server that answers only to the names it is really reached
by cannot be driven that way: loopback names (``localhost``, ``127.0.0.1``, ``[::1]``), the
address given to ``--host``, and, when bound to every interface, this machine's names and
any IP address (an IP literal cannot be rebound). A reverse proxy's public name is added with
``--allow-host`` (``*.lab.example`` matches its subdomains).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """The name in a ``Host`` header, lowercased, without port, brackets or trailing dot."""
    text = header.strip().lower()
    if text.startswith("["):  # [::1]:8787
        return text[1:text.find("]")] if "]" in text else ""
    name, colon, port = text.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        text = name
    return text.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostNames:
    """The host names one server answers to."""

    def __init__(self, bound: str, extra: Iterable[str] = ()) -> None:
        bare = bound.strip("[]")
        bound = host_name(f"[{bare}]" if ":" in bare else bare)
        self.exact = set(LOOPBACK_NAMES)
        self.any_ip = bound in WILDCARD_BINDS
        if self.any_ip:
            self.exact |= {host_name(socket.gethostname()), host_name(socket.getfqdn())}
        else:
            self.exact.add(bound)
        self.suffixes = set()
        for name in extra:
            name = host_name(name)
            if name.startswith("*."):
                self.suffixes.add(name[1:])  # ".lab.example"
            elif name:
                self.exact.add(name)

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if not name:
            return False
        if name in self.exact or any(name.endswith(s) for s in self.suffixes):
            return True
        return self.any_ip and _is_ip(name)
