"""What every page handler shares: the signed-in token, scope checks, rendering, URLs, paging."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
from aiohttp import web

from .. import auth, sentry, services
from ..auth import RELEASE_SCOPES
from ..errors import PermissionDenied
from ..keys import backend_key, blobstore_key, ui_session_key
from ..models import Organization, Project, Release, Token
from ..storage.blobs import BlobStore

_PUBLIC_ATTR = "_relserver_ui_public"

# Who may do what: a session carries exactly its token's scopes (DESIGN D11), checked with
# the API's own scope maps, so the page never grants what the API would refuse.
VIEW_SCOPES = RELEASE_SCOPES["GET"]
DELETE_SCOPES = RELEASE_SCOPES["DELETE"]
# Minting and revoking tokens is the data dir's administration: an unbound token with org:admin.
ADMIN_SCOPE = "org:admin"

PageHandler = Callable[[web.Request], Any]


def public(handler: PageHandler) -> PageHandler:
    """A page that needs no session (sign-in)."""
    setattr(handler, _PUBLIC_ATTR, True)
    return handler


def is_public(handler: Any) -> bool:
    return bool(getattr(handler, _PUBLIC_ATTR, False))


def backend(request: web.Request) -> services.Backend:
    return request.config_dict[backend_key]


def blobstore(request: web.Request) -> BlobStore:
    return request.config_dict[blobstore_key]


def token(request: web.Request) -> Token:
    return request[ui_session_key].token


def may_delete(tok: Token) -> bool:
    return bool(tok.scopes & DELETE_SCOPES)


def may_administer(tok: Token) -> bool:
    return tok.organization is None and ADMIN_SCOPE in tok.scopes


def require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied({"detail": "The token you signed in with does not have the scope for this."})


async def project_scope(request: web.Request) -> tuple[Organization, Project]:
    org = await services.resolve_organization(backend(request), token(request), request.match_info["org"])
    return org, await services.resolve_project(backend(request), org, request.match_info["project"])


async def release_scope(request: web.Request) -> tuple[Organization, Project, Release]:
    org, project = await project_scope(request)
    release = await services.get_release(backend(request), org, request.match_info["version"], project)
    return org, project, release


def url(*segments: object, **query: object) -> str:
    """A UI path: each segment percent-quoted whole, a trailing slash, the query (None dropped)."""
    path = "/ui/" + "".join(quote(str(s), safe="") + "/" for s in segments)
    pairs = [(k, str(v)) for k, v in query.items() if v is not None and v != ""]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def with_query(request: web.Request, **changes: object) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query.items() if k not in changes}
    query.update({k: str(v) for k, v in changes.items() if v is not None})
    return f"{quote(request.path)}?{urlencode(query)}" if query else quote(request.path)


def page_links(request: web.Request, page: sentry.Page, *, has_more: bool) -> dict[str, str | None]:
    """Previous/next links with the API's own cursors (Link header semantics)."""
    prev = str(sentry.Cursor(page.limit, page.page - 1, True)) if page.page > 0 else None
    nxt = str(sentry.Cursor(page.limit, page.page + 1, False)) if has_more else None
    return {
        "previous": with_query(request, cursor=prev) if prev else None,
        "next": with_query(request, cursor=nxt) if nxt else None,
    }


def render(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    session = request.get(ui_session_key)
    base = {
        "request": request,
        "session": session,
        "token": session.token if session else None,
        "may_delete": may_delete(session.token) if session else False,
        "may_administer": may_administer(session.token) if session else False,
        "url": url,
        "with_query": lambda **kw: with_query(request, **kw),
        "now": datetime.now(UTC),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.content_type = "text/html"
    response.charset = "utf-8"
    return response


def see_other(location: str) -> web.Response:
    """303 to a page of ours (after a form post: the browser then GETs it)."""
    return web.Response(status=303, headers={"Location": location})


def scopes_text(tok: Token) -> str:
    return " ".join(sorted(tok.scopes))


def known_scopes() -> list[str]:
    return sorted(auth.KNOWN_SCOPES)
