"""Organization details and release deploys: what build plugins call around an upload."""

from __future__ import annotations

from aiohttp import web

from .. import sentry, services
from ..auth import ORGANIZATION_READ_SCOPES, RELEASE_SCOPES
from .common import (
    backend,
    json_response,
    organization,
    paginated_response,
    public_origin,
    read_data,
    release_in_scope,
    requires,
)


@requires(ORGANIZATION_READ_SCOPES)
async def organization_details(request: web.Request) -> web.Response:
    """GET /organizations/{org}/ (the npm `sentry` uploader looks its organization up first)."""
    org = await organization(request)
    projects = await services.organization_projects(backend(request), org)
    return json_response(sentry.organization_json(org, projects, public_origin(request)))


@requires(RELEASE_SCOPES)
async def create_deploy(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/{version}/deploys/ (releases/endpoints/release_deploys.py)."""
    _, release = await release_in_scope(request)
    fields = sentry.validate_deploy(await read_data(request))
    deploy = await services.add_deploy(backend(request), release, fields)
    return json_response(sentry.deploy_json(deploy), status=201)


@requires(RELEASE_SCOPES)
async def list_deploys(request: web.Request) -> web.Response:
    """GET …/releases/{version}/deploys/ — newest finished first."""
    _, release = await release_in_scope(request)
    page = sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))
    found, has_more = await services.list_deploys(backend(request), release, page)
    return paginated_response(request, [sentry.deploy_json(d) for d in found], page, has_more=has_more)
