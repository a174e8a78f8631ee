"""Middlewares, outermost first: error shaping → authentication.

Error shaping is the one place any failure becomes a response (DESIGN invariant 8).
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from .. import auth, sentry, services
from ..errors import (
    APIError,
    BadRequest,
    BlobStoreDown,
    ClientClosedRequest,
    InsufficientStorage,
    NotAuthenticated,
    UnsupportedMediaType,
    is_disk_full,
)
from ..keys import catalog_key, release_scope_key, token_key
from ..models import Token
from ..storage.blobs import BlobStoreUnavailable
from ..storage.catalog import UnstorableText
from .common import Handler, json_response, required_scopes

log = logging.getLogger("relserver.api")

API_PREFIX = "/api/0/"
# Methods whose handlers read a body.
_BODY_METHODS = frozenset({"POST", "PUT"})


def error_response(error: APIError) -> web.Response:
    headers = {"WWW-Authenticate": auth.WWW_AUTHENTICATE} if isinstance(error, NotAuthenticated) else None
    if error.body is None:
        return web.Response(status=error.status, headers=headers)
    return json_response(error.body, status=error.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        return _from_http_exception(request, exc)
    except UnstorableText:
        # A NUL the catalog's engine cannot hold (PostgreSQL): DRF's words for the same refusal.
        return error_response(BadRequest(sentry.FIELD_NULL_CHARACTERS))
    except BlobStoreUnavailable as exc:
        # The object store failed after start (its bucket removed, credentials revoked, the
        # endpoint down): the client's request was fine, and the log line says what broke.
        log.error("%s %s: %s", request.method, request.path, exc)
        return error_response(BlobStoreDown())
    except ConnectionResetError:
        # aiohttp's "Connection lost" while the body was being read: a client that went away
        # is not a server error, and is worth one line, not a traceback.
        log.info("client closed the connection during %s %s", request.method, request.path)
        return error_response(ClientClosedRequest())
    except Exception as exc:
        if is_disk_full(exc):
            # sentry-cli retries a 507 (src/api/mod.rs), which is what a full disk wants.
            log.error("disk full on %s %s: %s", request.method, request.path, exc)
            return error_response(InsufficientStorage())
        # Minted only here: the id exists to tie a 500 to its log line.
        error_id = secrets.token_hex(16)
        log.exception("internal error on %s %s (errorId %s)", request.method, request.path, error_id)
        # api/base.py: unhandled errors answer this body.
        return json_response({"detail": "Internal Error", "errorId": error_id}, status=500)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own 404/405/413 get Sentry's shapes; other HTTP exceptions pass unchanged."""
    if exc.status == 404:
        # DESIGN D6: unknown calls answer Sentry's bare 404 and leave one line in the log.
        if not (request.path.startswith(API_PREFIX) or request.path == API_PREFIX.rstrip("/")):
            return web.Response(status=404)
        log.warning(
            "unimplemented API call: %s %s%s",
            request.method,
            request.path,
            f"?{request.query_string}" if request.query_string else "",
        )
        return _not_found_hint(request)
    if exc.status == 405:
        # DRF's MethodNotAllowed message, with the `Allow` header RFC 9110 asks for (DRF sends it).
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ())))
        return json_response(
            {"detail": f'Method "{request.method}" not allowed.'}, status=405, headers={"Allow": allowed}
        )
    if exc.status == 413:
        return json_response({"detail": exc.text or "Request body too large"}, status=413)
    raise exc


async def authenticate(request: web.Request) -> Token | None:
    """The request's token; None when no credentials were sent; Sentry's 401 when they are bad."""
    header = request.headers.get("Authorization")
    if header is not None and sentry.has_undecodable_bytes(header):
        raise NotAuthenticated(auth.INVALID_CHARACTERS)
    raw = auth.bearer_token(header)
    if raw is None:
        return None
    match = request.match_info
    if "org" in match and "version" in match:
        # A release's path: its objects come in the token's query (`release_in_scope`).
        token, scope = await services.token_and_release_scope(
            request.app[catalog_key], raw, match["org"], match.get("project"), match["version"]
        )
        request[release_scope_key] = scope
    else:
        token = await services.token_for(request.app[catalog_key], raw)
    if token is None or token.revoked:
        raise auth.invalid_token_error(raw)
    return token


def _not_found_hint(request: web.Request) -> web.Response:
    """Sentry's catch-all (api/endpoints/catchall.py): a hint when the trailing slash is missing."""
    if request.path.endswith("/"):
        return web.Response(status=404)
    help_text = "Route not found, did you forget a trailing slash?"
    suggestion = f"try: {request.path}/"
    if sentry.header_text(request.headers.get("Content-Type", "")).startswith("application/json"):
        return json_response({"info": f"{help_text} {suggestion}"}, status=404)
    arrow = " " * (len(suggestion) - 1) + "^"
    body = f"{help_text}\n\n{suggestion}\n{arrow}\n".encode()
    return web.Response(status=404, body=body, content_type="text/plain")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate and check scopes before any object in the path is looked up (Sentry's order)."""
    match_info = request.match_info
    if isinstance(match_info.http_exception, web.HTTPMethodNotAllowed):
        # Sentry authenticates before it looks for the method's handler (api/base.py dispatch),
        # so a known path with another method is a 401 without credentials, then the 405.
        if await authenticate(request) is None:
            raise NotAuthenticated(auth.NOT_PROVIDED)
        return await handler(request)
    scope_map = required_scopes(match_info.handler) if match_info.http_exception is None else None
    if scope_map is None:
        return await handler(request)
    token = await authenticate(request)
    if token is None:
        raise NotAuthenticated(auth.NOT_PROVIDED)
    auth.check_scopes(token, request.method, scope_map)
    request[token_key] = token
    content_type = request.headers.get("Content-Type")
    if request.method in _BODY_METHODS and content_type is not None and sentry.has_undecodable_bytes(content_type):
        # DRF refuses a media type it cannot parse when the view reads the body: after auth.
        raise UnsupportedMediaType(sentry.header_text(content_type))
    return await handler(request)
