"""/ui/live: a tiny page that logs in and shows the caller's live notification feed (/ws)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response

from ..auth import PUBLIC, permission

bp = Blueprint("ui", __name__)

LIVE_PAGE = Path(__file__).resolve().parent.parent / "pages" / "live.html"


@bp.get("/ui/live")
@permission(PUBLIC)  # the page holds no data; it logs in and authenticates /ws itself
def live() -> Response:
    """The static live-feed page (login form, then the feed over /ws)."""
    response = Response(LIVE_PAGE.read_bytes(), mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; form-action 'none'; frame-ancestors 'none'"
    )
    return response
