"""Sign in and out, the overview, and the live activity feed."""

from __future__ import annotations

from aiohttp import web

from .. import sentry
from ..keys import activity_key, signin_codes_key
from ..services import browse, sessions
from .common import VIEW_SCOPES, backend, may_administer, page_links, public, render, require, see_other, token, url
from .security import SESSION_COOKIE, clear_session_cookie, set_session_cookie

# Seconds between reloads of the activity page in its live mode (a meta refresh: no script).
ACTIVITY_REFRESH_SECONDS = 3
# The newest calls the overview shows; the activity page has the rest.
OVERVIEW_CALLS = 10


def _next_page(raw: str | None) -> str:
    """Where to go after signing in: a path of this UI only (never another site, never `//`)."""
    # No line breaks either: aiohttp refuses them in the Location header.
    if raw and raw.startswith("/ui/") and not raw.startswith("//") and not any(c in raw for c in "\\\r\n"):
        return raw
    return url()


@public
async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", {"next": _next_page(request.query.get("next")), "error": None})


@public
async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    raw = form.get("token")
    next_page = _next_page(str(form.get("next") or ""))
    opened = await sessions.sign_in(backend(request), raw if isinstance(raw, str) else "")
    if opened is None or not opened[1].token.scopes & VIEW_SCOPES:
        if opened is not None:
            await sessions.sign_out(backend(request), opened[0])
            error = "This token may not read releases (it needs project:read or more)."
        else:
            error = "That token is not valid: unknown or revoked."
        return render(request, "login.html", {"next": next_page, "error": error}, status=401)
    return _signed_in(request, opened, next_page)


def _signed_in(request: web.Request, opened: tuple[str, sessions.Session], next_page: str) -> web.StreamResponse:
    secret, _ = opened
    response = see_other(next_page)
    set_session_cookie(request, response, secret, backend(request).config.ui_session_max_age_seconds)
    return response


@public
async def signin_link(request: web.Request) -> web.Response:
    """The banner's one-time link: a button, so that a link preview cannot spend the code."""
    return render(request, "signin.html", {"code": request.query.get("code", "")})


@public
async def signin_with_code(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    code = form.get("code")
    opened = await request.config_dict[signin_codes_key].redeem(backend(request), code if isinstance(code, str) else "")
    if opened is None:
        error = "This sign-in link was used already or has expired. Sign in with a token instead."
        return render(request, "login.html", {"next": url(), "error": error}, status=401)
    return _signed_in(request, opened, url())


async def logout(request: web.Request) -> web.StreamResponse:
    secret = request.cookies.get(SESSION_COOKIE, "")
    await sessions.sign_out(backend(request), secret)
    response = see_other(url("login"))
    clear_session_cookie(request, response)
    return response


async def overview(request: web.Request) -> web.Response:
    tok = token(request)
    summaries = await browse.organizations_overview(backend(request), tok)
    feed = request.config_dict[activity_key]
    calls = feed.recent(tok.organization)
    return render(
        request, "overview.html", {"organizations": summaries, "calls": calls[:OVERVIEW_CALLS], "total": len(calls)}
    )


async def activity(request: web.Request) -> web.Response:
    """The feed, newest first, paged with the API's cursors (100 calls a page)."""
    tok = token(request)
    feed = request.config_dict[activity_key]
    live = request.query.get("live") == "1"
    page = sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))
    calls = feed.recent(tok.organization)
    shown = calls[page.offset : page.offset + page.limit]
    return render(
        request,
        "activity.html",
        {
            "calls": shown,
            "total": len(calls),
            "pages": page_links(request, page, has_more=len(calls) > page.offset + page.limit),
            "feed": feed,
            "live": live,
            "refresh": ACTIVITY_REFRESH_SECONDS,
            "may_clear": may_administer(tok),
        },
    )


async def clear_activity(request: web.Request) -> web.StreamResponse:
    # The feed holds every organization's calls: only an unbound admin token clears it.
    require(may_administer(token(request)))
    request.config_dict[activity_key].clear()
    return see_other(url("activity"))


async def root_redirect(request: web.Request) -> web.StreamResponse:
    return see_other(url())
