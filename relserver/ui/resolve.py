"""Resolve: paste a stack trace or an event's JSON, pick release and dist, see for each frame
what Sentry's source-map lookup would find and why (DESIGN D12).

The page reaches the lookup through `resolver()` alone, so it can be pointed at the resolve
service once one exists; until then it shows the form and says that resolving is not
available in this build.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from aiohttp import web

from .. import sentry, services
from .common import backend, project_scope, render

# Largest pasted trace or event the form takes (an event's JSON is rarely over 200 KiB).
MAX_INPUT_CHARACTERS = 1_000_000


def resolver() -> ModuleType | None:
    """The resolve service, when this build has one."""
    try:
        return importlib.import_module("relserver.services.resolve")
    except ImportError:
        return None


async def resolve(request: web.Request) -> web.Response:
    org, project = await project_scope(request)
    source = request.query if request.method == "GET" else await request.post()
    text = str(source.get("input") or "")[:MAX_INPUT_CHARACTERS]
    version = str(source.get("release") or "")
    dist = str(source.get("dist") or "")
    recent, _ = await services.list_releases(
        backend(request), org, sentry.Page(limit=20, offset=0, page=0), project=project, query=None, status="open"
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
            "available": resolver() is not None,
            "result": None,
        },
    )
