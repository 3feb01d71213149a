"""A client of a tympan server's JSON API (``/api/...``) with a token, for everything but
logging runs: reading runs back (``tympan.records.remote``) and the model registry
(``tympan.registry.remote``). Logging has its own client (``remote.py``): it retries what
may succeed later, while these calls answer at once.

Errors come back as the ``TympanError`` the server named (``RunNotFoundError``,
``InvalidInputError``, ...) with its message; 401 and 403 say which token to set; no answer
and 5xx are a ``StoreUnavailableError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tympan import errors
from tympan.errors import StoreError, StoreUnavailableError, TympanError
from tympan.store.location import redact

if TYPE_CHECKING:
    import httpx


class ServerAPI:
    """Calls to one server with one token; ``needs`` names what the calls need (in the hint
    of a 401), e.g. "read to load, write to register"."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0,
                 needs: str = "read") -> None:
        from tympan.track.remote import server_client

        self.client, self.where, self.token = server_client(url, token, timeout=timeout)
        self.needs = needs

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The server's answer to one request; an error answer raises (see the module)."""
        import httpx

        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = redact(str(exc) or type(exc).__name__)
            raise StoreUnavailableError(f"cannot reach the tympan server at {self.where} "
                                        f"({reason}); is it running?") from None
        if response.status_code >= 400:
            raise self.error(response)
        return response

    def error(self, response: httpx.Response) -> TympanError:
        from tympan.track.remote import server_said

        status = response.status_code
        kind, said = server_said(self.where, response)
        if status >= 500:
            return StoreUnavailableError(said)
        if status == 401:
            hint = (f"set TYMPAN_TOKEN to a token of this server (scope {self.needs})"
                    if not self.token else "check TYMPAN_TOKEN: unknown or revoked")
            return StoreError(f"{said}. {hint}")
        known = getattr(errors, kind, None)
        if isinstance(known, type) and issubclass(known, TympanError):
            return known(said)
        if status == 403:
            return errors.ProtectedAliasError(said) if "protected" in said else StoreError(said)
        if status == 404:
            return errors.NotFoundError(said)
        return errors.InvalidInputError(said)

    def close(self) -> None:
        self.client.close()
