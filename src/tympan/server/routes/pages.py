"""The web UI's pages: every page path answers the single-page app's ``index.html``.

    /  /runs  /runs/{run_id}  /runs/{run_id}/probe  /compare  /plots  /studies  /studies/{study}
    /findings  /models  /models/{name}  /models/{name}/versions/{version}

The page's own script (``/static/js/main.js``) routes on the URL and reads everything from the
JSON API, so a page link can be shared and reloaded. These routes need no token (the page
holds no data; it asks for a token when ``/api/whoami`` says it has none), and any of them
takes a ``?token=`` sign-in link (see ``session.link_sign_in``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tympan.server.routes.session import link_sign_in

INDEX = Path(__file__).resolve().parent.parent / "static" / "index.html"
PAGE_PATHS = ["/runs", "/runs/{run_id}", "/runs/{run_id}/probe", "/compare", "/plots", "/studies",
              "/studies/{study}", "/findings", "/models", "/models/{name}",
              "/models/{name}/versions/{version}"]
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; frame-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}

router = APIRouter(include_in_schema=False)


def _index(request: Request) -> Response:
    return link_sign_in(request) or HTMLResponse(INDEX.read_text(encoding="utf-8"),
                                                 headers=HEADERS)


def not_found_page() -> Response:
    """The page for a path no page has: the app, which says so (status 404)."""
    return HTMLResponse(INDEX.read_text(encoding="utf-8"), status_code=404, headers=HEADERS)


@router.get("/")
def home(request: Request) -> Response:
    return link_sign_in(request) or RedirectResponse("/runs", status_code=302)


for _path in PAGE_PATHS:
    router.add_api_route(_path, _index, methods=["GET"], response_class=HTMLResponse)
