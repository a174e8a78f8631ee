"""GET /api/0/ — who the presented token is (what `sentry-cli info` shows)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..models import Token
from .common import json_response
from .middleware import authenticate


def _user_json(token: Token) -> dict[str, Any] | None:
    """relserver has tokens, not users: a user token stands for a pseudo-user of its own."""
    if token.kind == "org":
        return None  # Org auth tokens have no user in Sentry either.
    return {
        "id": str(token.id),
        "name": token.label or f"token {token.id}",
        "username": f"token-{token.id}",
        "email": f"token-{token.id}@relserver.invalid",
    }


async def api_index(request: web.Request) -> web.Response:
    """api/endpoints/index.py: no credentials answers nulls; bad credentials are still a 401."""
    token = await authenticate(request)
    if token is None:
        return json_response({"version": "0", "auth": None, "user": None})
    return json_response({"version": "0", "auth": {"scopes": sorted(token.scopes)}, "user": _user_json(token)})
