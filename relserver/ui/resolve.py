"""Resolve: paste a stack trace or an event's JSON, pick release and dist, see for each frame
what Sentry's source-map lookup would find and why (DESIGN D12), as `services.resolve` tells it.

The page reaches the service through `resolver()` alone; without the `relserver[resolve]`
extra (Sentry's symbolic engine) it shows its form and says how to install it.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from aiohttp import web

from .. import sentry, services
from ..services import resolve as resolve_service
from .common import backend, project_scope, render

# Largest pasted trace or event the page takes: an event's JSON is rarely over 200 KiB, and
# this is the API's own JSON body cap (Config.max_field_size's default, DESIGN D7).
MAX_INPUT_CHARACTERS = 1024 * 1024
# Releases offered in the release field's suggestions (the project's newest).
SUGGESTED_RELEASES = 20


def resolver() -> ModuleType | None:
    """The resolve service, when this installation can run it (symbolic is an extra)."""
    return resolve_service if resolve_service.resolve_available() else None


def request_body(text: str, release: str, dist: str) -> dict[str, Any]:
    """The resolve API's body for what was pasted: an event's JSON, a list of frames, or the
    text of a stack trace."""
    body: dict[str, Any] = {"release": release or None, "dist": dist or None}
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's recursion limit
            parsed = None
        code_point = sentry.first_surrogate(parsed)
        if code_point is not None:
            # As the API's body parsing refuses it (api/common.read_data): nothing can store it.
            raise resolve_service.ResolveInputError(sentry.surrogate_error(code_point))
        if isinstance(parsed, dict):
            body["event"] = parsed
            return body
        if isinstance(parsed, list):
            body["frames"] = parsed
            return body
    body["stacktrace"] = text
    return body


async def resolve(request: web.Request) -> web.Response:
    org, project = await project_scope(request)
    source = request.query if request.method == "GET" else await request.post()
    text = str(source.get("input") or "")
    version = str(source.get("release") or "")
    dist = str(source.get("dist") or "")
    recent, _ = await services.list_releases(
        backend(request),
        org,
        sentry.Page(limit=SUGGESTED_RELEASES, offset=0, page=0),
        project=project,
        filters=services.ReleaseFilter(),
    )
    service = resolver()
    result = None
    error = None
    if text.strip() and service is not None:
        if len(text) > MAX_INPUT_CHARACTERS:
            error = f"That is more than {MAX_INPUT_CHARACTERS // 1024} KiB; paste one event or one stack trace."
        else:
            try:
                parsed = service.parse_request(request_body(text, version, dist))
            except service.ResolveInputError as exc:
                error = str(exc)
            else:
                result = await service.resolve(
                    backend(request), org, project, parsed.release, parsed.dist, parsed.frames
                )
    return render(
        request,
        "resolve.html",
        {
            "org": org,
            "project": project,
            "input": text,
            "release": version,
            "dist": dist,
            "releases": [v.release.version for v in recent],
            "available": service is not None,
            "install": resolve_service.RESOLVE_EXTRA_INSTALL,
            "error": error,
            "result": result,
        },
        status=400 if error else 200,
    )
