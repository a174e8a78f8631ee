"""POST /projects/{org}/{project}/relserver/resolve/ — what Sentry's processing would make of
JavaScript frames, explained (DESIGN D12). relserver's own endpoint, so it lives under
`relserver/` in Sentry's URL space."""

from __future__ import annotations

from aiohttp import web

from ..auth import RELEASE_SCOPES
from ..errors import APIError, BadRequest
from ..services import resolve as service
from .common import backend, json_response, organization_and_project, read_data, requires

# The artifact lookup's scopes (ProjectReleasePermission's GET): resolve only reads, so a
# token that may look artifacts up may resolve with them, though the call is a POST.
RESOLVE_SCOPES = {"POST": RELEASE_SCOPES["GET"]}


@requires(RESOLVE_SCOPES)
async def resolve_frames(request: web.Request) -> web.Response:
    """`{"release", "dist", "frames" | "event" | "stacktrace"}` → `{"frames": [...], ...}`."""
    org, project = await organization_and_project(request)
    assert project is not None
    if not service.resolve_available():
        raise APIError(str(service.ResolveUnavailable()), status=501)
    try:
        parsed = service.parse_request(await read_data(request))
    except service.ResolveInputError as exc:
        raise BadRequest(str(exc)) from None
    result = await service.resolve(backend(request), org, project, parsed.release, parsed.dist, parsed.frames)
    return json_response(result.to_json())
