"""Helpers every handler shares: JSON in and out, the scope declaration, path resolution."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from aiohttp import web

from .. import sentry, services
from ..errors import BadRequest, UnsupportedMediaType
from ..keys import backend_key, config_key, release_scope_key, token_key
from ..models import Organization, Project, Release

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SCOPES_ATTR = "_relserver_scopes"


def requires(scope_map: Mapping[str, frozenset[str]]) -> Callable[[Handler], Handler]:
    """Declare a handler as authenticated, with Sentry's per-method scope map."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, _SCOPES_ATTR, scope_map)
        return handler

    return mark


def required_scopes(handler: Callable[..., Any]) -> Mapping[str, frozenset[str]] | None:
    scopes: Mapping[str, frozenset[str]] | None = getattr(handler, _SCOPES_ATTR, None)
    return scopes


def dumps(data: Any) -> str:
    """DRF's JSON renderer: compact separators, UTF-8 (not ASCII-escaped)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly `application/json`, no charset parameter: what Sentry sends and sentry-cli checks.
    # Inputs never carry lone surrogates this far; were one to slip through, it goes out as the
    # JSON escape `\udXXX` (what backslashreplace writes) instead of failing the response.
    body = dumps(data).encode("utf-8", "backslashreplace")
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def backend(request: web.Request) -> services.Backend:
    return request.app[backend_key]


async def read_data(request: web.Request) -> Any:
    """A DRF-parsed body: JSON or a url-encoded form (a dict of lists for repeated keys)."""
    if not request.body_exists:
        return {}
    media_type = request.content_type
    raw = await request.read()
    if media_type == "application/json":
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # DRF's JSONParser: 'JSON parse error - <message>'.
            raise BadRequest(f"JSON parse error - {exc}") from exc
        sentry.reject_surrogates(data)
        return data
    if media_type == "application/x-www-form-urlencoded":
        form: dict[str, Any] = {}
        for key, value in parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True):
            form.setdefault(key, []).append(value)
        # Single-valued fields read as their last value, list fields as all (QueryDict).
        return {k: v if k == "projects" else v[-1] for k, v in form.items()}
    raise UnsupportedMediaType(sentry.header_text(request.headers.get("Content-Type", "")))


def public_origin(request: web.Request) -> str:
    """The scheme and host clients reach us on: --public-url, else the request's own origin
    (with X-Forwarded-Proto/-Host only under --trust-proxy, DESIGN D5)."""
    config = request.app[config_key]
    if config.public_url:
        return config.public_url.rstrip("/")
    scheme, host = request.scheme, request.host
    if config.trust_proxy:
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip().lower() or scheme
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip() or host
    if scheme not in ("http", "https") or not sentry.is_valid_host(host):
        # Django's get_host() refuses such a Host (DisallowedHost, a 400) before any view runs.
        raise BadRequest(sentry.INVALID_HOST)
    return f"{scheme}://{host}"


def paginated_response(request: web.Request, items: Any, page: sentry.Page, *, has_more: bool) -> web.Response:
    """A JSON array with Sentry's Link header (api/base.py build_cursor_link)."""
    # The absolute path, percent-quoted, then the query without `cursor` (repeated keys kept):
    # with nothing else in the query this gives Sentry's own `…/?&cursor=…` form.
    query = urlencode([(k, v) for k, v in request.query.items() if k != "cursor"])
    base = f"{public_origin(request)}{quote(request.path)}?{query}"
    return json_response(items, headers={"Link": sentry.link_header(base, page, has_more=has_more)})


async def organization(request: web.Request) -> Organization:
    """The path's organization, which must exist (404 otherwise, auto-create or not)."""
    return await services.resolve_organization(backend(request), request[token_key], request.match_info["org"])


async def creatable_organization(request: web.Request) -> Organization | None:
    """For requests that create: the organization, or None when this request may create it."""
    return await services.find_organization(
        backend(request), request[token_key], request.match_info["org"], creatable=True
    )


async def organization_and_project(request: web.Request) -> tuple[Organization, Project | None]:
    """The path's organization, and its project on project-scoped routes."""
    org = await organization(request)
    project_ref = request.match_info.get("project")
    if project_ref is None:
        return org, None
    return org, await services.resolve_project(backend(request), org, project_ref)


async def release_in_scope(request: web.Request) -> tuple[Organization, Release]:
    """The path's release (at project scope: linked to the project), or Sentry's 403/404."""
    found = await services.find_release_scope(
        backend(request),
        request[token_key],
        request.match_info["org"],
        request.match_info.get("project"),
        request.match_info["version"],
        request.get(release_scope_key),
    )
    if found is not None:
        return found
    org, project = await organization_and_project(request)
    release = await services.get_release(backend(request), org, request.match_info["version"], project)
    return org, release
