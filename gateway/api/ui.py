"""The browser console (`/ui/...`), the live feed (`/ui/live`) and Swagger UI (`/api/docs`).

The pages are Jinja2 shells that hold no data: their script logs in and reads everything from
the REST API with the caller's token, so the console sees exactly what the API lets the caller
see (docs/console.md; docs/security.md "The console").
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, abort, render_template, send_from_directory

from nameko_services.domain.states import ExecutionStatus

from ..auth import PUBLIC, permission
from .openapi import produces

PAGES = Path(__file__).resolve().parent.parent / "pages"
ASSETS = PAGES / "assets"
# Swagger UI's files as the flask-swagger-ui wheel ships them (its blueprint is not used: its
# routes declare no permission and its page runs an inline script).
SWAGGER_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
SWAGGER_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"})

bp = Blueprint("ui", __name__, template_folder=str(PAGES))

# Scripts and styles from this origin only (no inline script: data is never turned into code);
# fetch and /ws to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self' ws: wss:; form-action 'none'; "
       "frame-ancestors 'none'; base-uri 'none'")
CONSOLE_PAGES = {
    "executions": "Executions",
    "inquiries": "Inquiries",
    "rules": "Rules",
    "packs": "Packs",
    "datastore": "Datastore",
}


def _harden(response: Response, csp: str = CSP) -> Response:
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = csp
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _page(template: str, **context: object) -> Response:
    return _harden(Response(render_template(template, pages=CONSOLE_PAGES, **context),
                            mimetype="text/html"))


@bp.get("/ui/live")
@permission(PUBLIC)  # the page holds no data; it logs in and authenticates /ws itself
@produces("text/html")
def live() -> Response:
    """The static live-feed page (login form, then the feed over /ws)."""
    return _harden(Response((PAGES / "live.html").read_bytes(), mimetype="text/html"),
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self' ws: wss:; form-action 'none'; frame-ancestors 'none'")


@bp.get("/ui/<any(executions, inquiries, rules, packs, datastore):page>")
@permission(PUBLIC)  # a shell without data: its script reads the API with the user's token
@produces("text/html")
def console_page(page: str) -> Response:
    """A console page (login form until logged in, then the page's data from the API)."""
    return _page(f"{page}.html", page=page, title=CONSOLE_PAGES[page],
                 statuses=[status.value for status in ExecutionStatus])


@bp.get("/ui/")
@permission(PUBLIC)
@produces("text/html")
def console_home() -> Response:
    """The console's start page: the executions list."""
    return console_page("executions")


@bp.get("/ui/executions/<int:execution_id>")
@permission(PUBLIC)
@produces("text/html")
def console_execution(execution_id: int) -> Response:
    """The console's page of one execution (its data from the API with the user's token)."""
    return _page("execution.html", page="executions", title=f"Execution {execution_id}",
                 execution_id=execution_id)


@bp.get("/ui/assets/<name>")
@permission(PUBLIC)
@produces("text/javascript", "text/css")
def console_asset(name: str) -> Response:
    """The console's own script and style sheet."""
    if not (ASSETS / name).is_file():
        abort(404)
    return _harden(send_from_directory(ASSETS, name, max_age=0))


@bp.get("/api/docs")
@permission(PUBLIC)
@produces("text/html")
def api_docs() -> Response:
    """Swagger UI over /api/v1/openapi.json."""
    return _page("api_docs.html", page="docs", title="API docs")


@bp.get("/api/docs/<name>")
@permission(PUBLIC)
@produces("text/javascript", "text/css", "image/png")
def swagger_asset(name: str) -> Response:
    """Swagger UI's script, style sheet and icon (from the flask-swagger-ui package)."""
    if name not in SWAGGER_FILES:
        abort(404)
    return _harden(send_from_directory(SWAGGER_DIST, name, max_age=3600))
