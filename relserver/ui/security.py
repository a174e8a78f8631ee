"""The web UI's security rules (DESIGN D11), in one place.

- Every non-GET request passes an origin check: `Sec-Fetch-Site: same-origin`, or, when a
  browser sends no Sec-Fetch-* headers (plain http on a non-loopback name), an `Origin`
  equal to this server's own origin (`--public-url`, or the request's, honouring
  `--trust-proxy`). SameSite=Strict alone is not enough: another port of the same host is
  the same *site* and gets the cookie. A refusal names what it saw and what it expected.
- Pages carry a strict Content-Security-Policy (no script at all), `X-Frame-Options: DENY`,
  `nosniff`, and are not cached; the static assets are cached for good under a hashed URL.
- The session cookie is `HttpOnly; SameSite=Strict; Path=/ui/`, and `Secure` when the
  server's origin is https.
"""

from __future__ import annotations

import math

from aiohttp import web

from ..api.common import public_origin
from ..errors import APIError

UI_PREFIX = "/ui/"
STATIC_PREFIX = "/ui/static/"
SESSION_COOKIE = "relserver_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# No script, no plugin, no frame, forms only to ourselves, styles and images from ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# `same-origin` keeps the Referer inside; `no-referrer` would make browsers send `Origin: null`
# on form posts, which the origin check must refuse (bugsink #1 is that trap).
REFERRER_POLICY = "same-origin"
# A hashed asset URL never changes content: a year, the usual ceiling, and immutable.
STATIC_CACHE_CONTROL = "public, max-age=31536000, immutable"


class OriginRefused(APIError):
    """A non-GET UI request from another origin (or with no way to tell)."""

    def __init__(self, seen: str, expected: str) -> None:
        super().__init__(f"refused: this request came from {seen}; this server's origin is {expected}", status=403)
        self.seen = seen
        self.expected = expected


def expected_origin(request: web.Request) -> str:
    try:
        return public_origin(request)
    except APIError:
        return "(none: the request's Host is not valid)"


def check_origin(request: web.Request) -> None:
    """Raise OriginRefused unless the request provably comes from a page of this server."""
    if request.method in SAFE_METHODS:
        return
    expected = expected_origin(request)
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None:
        if site == "same-origin":
            return
        raise OriginRefused(f"Sec-Fetch-Site: {site} (Origin: {origin or 'none'})", expected)
    if origin is not None and origin == expected:
        return
    raise OriginRefused(f"Origin: {origin or 'none'}", expected)


def is_https(request: web.Request) -> bool:
    return expected_origin(request).startswith("https://")


def set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str, max_age: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=math.ceil(max_age),
        path=UI_PREFIX,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=UI_PREFIX, httponly=True, samesite="Strict", secure=is_https(request))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every answer under /ui/ (pages, errors, assets, downloads)."""
    if not request.path.startswith(UI_PREFIX) and request.path != UI_PREFIX.rstrip("/"):
        return
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = REFERRER_POLICY
    if request.path.startswith(STATIC_PREFIX):
        if "v" in request.query and response.status == 200:
            headers["Cache-Control"] = STATIC_CACHE_CONTROL
    else:
        # Pages show what a signed-in token may see: never kept by a shared cache or the back button.
        headers["Cache-Control"] = "no-store"
