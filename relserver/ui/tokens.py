"""Tokens (an unbound token with org:admin only): list, create (shown once), revoke."""

from __future__ import annotations

from aiohttp import web

from .. import sentry, services
from ..errors import NotFound
from ..keys import catalog_key
from .common import may_administer, render, require, see_other, token, url

# Longest label accepted from the form (the CLI takes any; a page needs a bound).
MAX_LABEL_LENGTH = 200
# What a new token gets when no box is ticked: the CLI's default (`relserver token create`).
DEFAULT_SCOPES = frozenset({"project:releases", "org:read"})


async def tokens(request: web.Request) -> web.Response:
    require(may_administer(token(request)))
    return await _page(request, created=None, error=None)


async def _page(request: web.Request, *, created: str | None, error: str | None, status: int = 200) -> web.Response:
    found = await services.list_tokens(request.config_dict[catalog_key])
    mine = token(request)
    return render(
        request,
        "tokens.html",
        {
            "tokens": found,
            "created": created,
            "error": error,
            "scopes": sorted(mine.scopes),
            "defaults": DEFAULT_SCOPES,
            "current_id": mine.id,
        },
        status=status,
    )


async def create_token(request: web.Request) -> web.Response:
    """A new user token with the ticked scopes, never more than the session's own."""
    mine = token(request)
    require(may_administer(mine))
    form = await request.post()
    label = str(form.get("label") or "").strip() or "created in the web UI"
    # None ticked: the CLI's default, within what the session's own token has.
    scopes = frozenset(str(s) for s in form.getall("scope", [])) or (DEFAULT_SCOPES & mine.scopes)
    organization = str(form.get("org") or "").strip() or None
    error = None
    if len(label) > MAX_LABEL_LENGTH:
        error = f"The label is longer than {MAX_LABEL_LENGTH} characters."
    elif not scopes:
        error = "Tick at least one scope."
    elif not scopes <= mine.scopes:
        error = "A token can only be given scopes the token you signed in with has."
    elif organization is not None and not sentry.is_valid_org_slug(organization):
        error = "That is not a valid organization slug."
    if error:
        return await _page(request, created=None, error=error, status=400)
    raw = await services.create_token(
        request.config_dict[catalog_key], label=label, scopes=scopes, organization=organization
    )
    # Rendered, not redirected: the token is shown once and never lands in a URL or history.
    return await _page(request, created=raw, error=None)


async def revoke_token(request: web.Request) -> web.StreamResponse:
    require(may_administer(token(request)))
    try:
        token_id = int(request.match_info["token_id"])
    except ValueError:
        raise NotFound({"detail": "No such token."}) from None
    found = next((t for t in await services.list_tokens(request.config_dict[catalog_key]) if t.id == token_id), None)
    if found is None or found.revoked:
        raise NotFound({"detail": "No active token with this id."})
    if request.method == "GET":
        own = found.id == token(request).id
        return render(
            request,
            "confirm.html",
            {
                "title": f"Revoke token {found.label}?",
                "what": f"the token “{found.label}” (…{found.last_characters}); every client using it is refused",
                "warning": "This is the token you are signed in with: this ends your session." if own else None,
                "cancel": url("tokens"),
                "action_label": "Revoke",
            },
        )
    await services.revoke_token(request.config_dict[catalog_key], token_id)
    return see_other(url("tokens"))
