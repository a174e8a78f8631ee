"""Mounting the web UI: a sub-application under /ui/ with its own middlewares (page errors,
the origin check, the session), Jinja2 with autoescape, the routes, the hashed static assets."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..api.common import Handler
from ..config import Config
from ..errors import APIError
from ..keys import config_key, ui_session_key
from ..services import sessions
from . import bundles, pages, releases, resolve, tokens
from .cells import FILTERS
from .common import backend, is_public, render, url
from .security import SESSION_COOKIE, OriginRefused, check_origin, clear_session_cookie, security_headers

log = logging.getLogger("relserver.ui")

STATIC_DIR = Path(__file__).parent / "static"
PROJECT = "/{org}/{project}"


@web.middleware
async def page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refusals and the services' Sentry errors as pages, with the status the API would give."""
    try:
        return await handler(request)
    except OriginRefused as exc:
        log.warning("refused a %s %s: %s (expected %s)", request.method, request.path, exc.seen, exc.expected)
        refused = {"title": "Refused: not from this server's pages", "seen": exc.seen, "expected": exc.expected}
        return render(request, "error.html", refused, status=403)
    except APIError as exc:
        detail = exc.body.get("detail") if isinstance(exc.body, dict) else exc.body
        message = detail if isinstance(detail, str) else None
        titles = {400: "Bad request", 403: "Not allowed", 404: "Not found"}
        context: dict[str, object] = {"title": titles.get(exc.status, f"Error {exc.status}"), "message": message}
        return render(request, "error.html", context, status=exc.status)


@web.middleware
async def origin_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_origin(request)
    return await handler(request)


@web.middleware
async def session_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but sign-in needs a live session; without one, sign in and come back."""
    match_info = request.match_info
    if is_public(match_info.handler) or match_info.http_exception is not None or _is_static(match_info):
        return await handler(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    session = await sessions.session_for(backend(request), secret) if secret else None
    if session is None:
        back = request.path_qs if request.method == "GET" else url()
        response = web.HTTPSeeOther(url("login", next=back))
        if secret:
            clear_session_cookie(request, response)
        raise response
    request[ui_session_key] = session
    return await handler(request)


def _is_static(match_info: web.UrlMappingMatchInfo) -> bool:
    """The stylesheet: public, so that the sign-in page is styled too."""
    route = match_info.route
    return route is not None and isinstance(route.resource, web.StaticResource)


def build_ui(config: Config) -> web.Application:
    ui = web.Application(middlewares=[page_errors, origin_check, session_auth])
    # Known when the UI is built (the root app's state is filled in later, at start-up).
    ui[config_key] = config
    env = aiohttp_jinja2.setup(
        ui,
        loader=jinja2.PackageLoader("relserver.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship inside the package and do not change while it runs: no stat per render.
        auto_reload=False,
    )
    env.filters.update(FILTERS)
    # Our own `url` (quoted path segments) replaces aiohttp-jinja2's route-name one, so that
    # imported macros, which see only globals, build the same links as the pages.
    env.globals["url"] = url
    static = ui.router.add_static("/static/", STATIC_DIR, append_version=True, name="static")
    env.globals["static"] = lambda name: str(static.url_for(filename=name))
    ui.router.add_routes(
        [
            web.get("/", pages.overview),
            web.get("/login/", pages.login_form),
            web.post("/login/", pages.login),
            web.get("/signin/", pages.signin_link),
            web.post("/signin/", pages.signin_with_code),
            web.post("/logout/", pages.logout),
            web.get("/activity/", pages.activity),
            web.post("/activity/clear/", pages.clear_activity),
            web.get("/tokens/", tokens.tokens),
            web.post("/tokens/", tokens.create_token),
            web.get("/tokens/{token_id}/revoke/", tokens.revoke_token),
            web.post("/tokens/{token_id}/revoke/", tokens.revoke_token),
            web.get(f"{PROJECT}/releases/", releases.releases),
            web.get(f"{PROJECT}/releases/{{version}}/", releases.release),
            web.get(f"{PROJECT}/releases/{{version}}/files/{{file_id}}/", releases.release_file),
            web.get(f"{PROJECT}/releases/{{version}}/files/{{file_id}}/download/", releases.download_release_file),
            web.get(f"{PROJECT}/releases/{{version}}/files/{{file_id}}/delete/", releases.delete_release_file),
            web.post(f"{PROJECT}/releases/{{version}}/files/{{file_id}}/delete/", releases.delete_release_file),
            web.get(f"{PROJECT}/bundles/", bundles.bundles),
            web.get(f"{PROJECT}/bundles/{{bundle_id}}/", bundles.bundle),
            web.get(f"{PROJECT}/bundles/{{bundle_id}}/delete/", bundles.delete_bundle),
            web.post(f"{PROJECT}/bundles/{{bundle_id}}/delete/", bundles.delete_bundle),
            web.get(f"{PROJECT}/bundles/{{bundle_id}}/files/{{file_id}}/", bundles.member),
            web.get(f"{PROJECT}/bundles/{{bundle_id}}/files/{{file_id}}/download/", bundles.download_member),
            web.get(f"{PROJECT}/resolve/", resolve.resolve),
            web.post(f"{PROJECT}/resolve/", resolve.resolve),
        ]
    )
    return ui


def setup_ui(app: web.Application, config: Config) -> None:
    """Mount the UI on `app` under /ui/ and add its response headers."""
    app.router.add_get("/ui", pages.root_redirect)
    app.add_subapp("/ui", build_ui(config))
    app.on_response_prepare.append(security_headers)
