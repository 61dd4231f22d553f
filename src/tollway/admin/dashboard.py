"""The dashboard: ``GET /`` and its static files, shipped in ``tollway/dashboard/``.

The files hold no data, so they are served without the admin token; the page asks for
the token once (before its first call when the admin API has one, or when the API
answers 401) and sends it from script on every API call, never in a URL. A strict
Content-Security-Policy keeps the page to this origin: it loads nothing from anywhere
else and works offline.
"""

from __future__ import annotations

from importlib import resources

from tollway.admin.app import AdminApp, AdminRequest, Handler

Answer = tuple[int, list[tuple[str, str]], bytes]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
]


def _static(body: bytes, content_type: str) -> Handler:
    headers = [("content-type", content_type), *_HEADERS]

    async def serve(req: AdminRequest) -> Answer:
        return 200, list(headers), body

    return serve


def register(admin: AdminApp) -> None:
    """Serve ``index.html`` at ``/`` and every other file at ``/dashboard/<name>``."""
    folder = resources.files("tollway.admin") / "static"
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        content_type = _TYPES.get(suffix)
        if content_type is None or not item.is_file():
            continue
        body = item.read_bytes()
        if item.name == "index.html" and admin.token:
            # Whether a token is needed (not the token): the page asks for it before
            # its first call instead of after a round of 401s.
            body = body.replace(b"<body>", b'<body data-token-required="true">', 1)
        handler = _static(body, content_type)
        path = "/" if item.name == "index.html" else f"/dashboard/{item.name}"
        admin.add("GET", path, handler, public=True)
