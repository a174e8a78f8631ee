"""Organization details and release deploys: what build plugins call around an upload."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from .. import sentry
from ..auth import ORGANIZATION_READ_SCOPES, RELEASE_SCOPES
from ..errors import BadRequest, NotFound
from ..store import ReleaseGone
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

# Environment.is_valid_name / ENVIRONMENT_NAME_PATTERN (models/environment.py, constants.py).
_ENVIRONMENT_NAME = re.compile(r"[^\n\r\f/]*")
MAX_ENVIRONMENT_LENGTH = 64
# DeploySerializer (releases/endpoints/release_deploys.py): name is a CharField(max_length=64).
MAX_DEPLOY_NAME_LENGTH = 64


@requires(ORGANIZATION_READ_SCOPES)
async def organization_details(request: web.Request) -> web.Response:
    """GET /organizations/{org}/ (the npm `sentry` uploader looks its organization up first)."""
    org = await organization(request)
    projects = await backend(request).store.list_projects(org.id)
    return json_response(sentry.organization_json(org, projects, public_origin(request)))


@requires(RELEASE_SCOPES)
async def create_deploy(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/{version}/deploys/ (releases/endpoints/release_deploys.py)."""
    _, release = await release_in_scope(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    environment = sentry.string_field(data, "environment", errors, max_length=MAX_ENVIRONMENT_LENGTH)
    if environment is not None and not _ENVIRONMENT_NAME.fullmatch(environment):
        errors["environment"] = ["Invalid value for environment"]
    started = sentry.datetime_field(data, "dateStarted", errors)
    finished = sentry.datetime_field(data, "dateFinished", errors)
    name = sentry.optional_string_field(data, "name", errors, max_length=MAX_DEPLOY_NAME_LENGTH)
    url = sentry.url_field(data, "url", errors)
    if errors or environment is None:
        raise BadRequest(errors)
    try:
        deploy = await backend(request).store.add_deploy(
            release.id,
            environment=environment,
            name=name,
            url=url,
            date_started=started,
            date_finished=finished or datetime.now(UTC),
        )
    except ReleaseGone:
        raise NotFound() from None  # deleted since the lookup above
    return json_response(sentry.deploy_json(deploy), status=201)


@requires(RELEASE_SCOPES)
async def list_deploys(request: web.Request) -> web.Response:
    """GET …/releases/{version}/deploys/ — newest finished first."""
    _, release = await release_in_scope(request)
    page = sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))
    found = await backend(request).store.list_deploys(release.id, offset=page.offset, limit=page.limit + 1)
    items = [sentry.deploy_json(d) for d in found[: page.limit]]
    return paginated_response(request, items, page, has_more=len(found) > page.limit)
