"""Release handlers: create at organization and project scope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES
from ..errors import BadRequest
from ..models import ReleaseView
from .common import (
    backend,
    creatable_organization,
    json_response,
    organization,
    organization_and_project,
    paginated_response,
    read_data,
    release_in_scope,
    requires,
)

# 208 Already Reported: Sentry's answer when the create changed nothing.
ALREADY_REPORTED = 208


def _optional_string(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[key] = [sentry.FIELD_NOT_STRING]
        return None
    return str(value) or None


def _release_fields(request: web.Request, data: dict[str, Any], errors: dict[str, list[str]]) -> services.ReleaseFields:
    return services.ReleaseFields(
        ref=_optional_string(data, "ref", errors),
        url=_optional_string(data, "url", errors),
        date_released=sentry.datetime_field(data, "dateReleased", errors),
        # The create endpoints record the caller's User-Agent ("" when absent).
        user_agent=sentry.header_text(request.headers.get("User-Agent", "")),
    )


def _project_refs(data: dict[str, Any], errors: dict[str, list[str]]) -> list[str]:
    if "projects" not in data:
        errors["projects"] = [sentry.FIELD_REQUIRED]
        return []
    value = data["projects"]
    if isinstance(value, str) or not isinstance(value, list):
        # DRF ListField's message.
        errors["projects"] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return []
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        errors["projects"] = [services.INVALID_PROJECTS]
        return []
    return [str(v) for v in value]


def _created_or_reported(changed: bool) -> int:
    return 201 if changed else ALREADY_REPORTED


@requires(RELEASE_SCOPES)
async def create_organization_release(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/ (organization_releases.py)."""
    found = await creatable_organization(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    version = sentry.validate_version_field(data, errors)
    refs = _project_refs(data, errors)
    fields = _release_fields(request, data, errors)
    if errors or version is None:
        raise BadRequest(errors)
    org, projects = await services.provision(backend(request), found, request.match_info["org"], refs)
    view, changed = await services.create_release(backend(request), org, version, projects, fields)
    return json_response(sentry.release_json(view), status=_created_or_reported(changed))


@requires(RELEASE_SCOPES)
async def create_project_release(request: web.Request) -> web.Response:
    """POST /projects/{org}/{project}/releases/: 201 when this project is newly linked, else 208."""
    found = await creatable_organization(request)
    project_ref = request.match_info["project"]
    project = await services.find_project(backend(request), found, project_ref, creatable=True)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    version = sentry.validate_version_field(data, errors)
    fields = _release_fields(request, data, errors)
    if errors or version is None:
        raise BadRequest(errors)
    org, projects = await services.provision(
        backend(request), found, request.match_info["org"], [] if project else [project_ref]
    )
    view, changed = await services.create_release(backend(request), org, version, [project or projects[0]], fields)
    return json_response(sentry.release_json(view), status=_created_or_reported(changed))


def _release_page(request: web.Request) -> sentry.Page:
    return sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))


async def _release_list_response(
    request: web.Request, page: sentry.Page, found: list[ReleaseView], has_more: bool
) -> web.Response:
    return paginated_response(request, [sentry.release_json(v) for v in found], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def list_organization_releases(request: web.Request) -> web.Response:
    """GET /organizations/{org}/releases/ — newest first, open ones unless `status=archived`."""
    org = await organization(request)
    status = request.query.get("status", "open")
    if status not in sentry.RELEASE_STATUSES:
        raise BadRequest("invalid value for status")
    in_projects = await services.requested_projects(
        backend(request), org, sentry.parse_project_ids(request.query.getall("project", []))
    )
    page = _release_page(request)
    found, has_more = await services.list_releases(
        backend(request),
        org,
        page,
        project=None,
        query=request.query.get("query"),
        status=status,
        in_projects=in_projects,
    )
    return await _release_list_response(request, page, found, has_more)


@requires(RELEASE_SCOPES)
async def list_project_releases(request: web.Request) -> web.Response:
    """GET /projects/{org}/{project}/releases/ — open releases, newest release date first."""
    org, project = await organization_and_project(request)
    page = _release_page(request)
    found, has_more = await services.list_releases(
        backend(request), org, page, project=project, query=request.query.get("query"), status="open"
    )
    return await _release_list_response(request, page, found, has_more)


@requires(RELEASE_SCOPES)
async def release_details(request: web.Request) -> web.Response:
    """GET …/releases/{version}/ at either scope."""
    _, release = await release_in_scope(request)
    return json_response(sentry.release_json(await services.release_view(backend(request), release)))


@requires(RELEASE_SCOPES)
async def update_release(request: web.Request) -> web.Response:
    """PUT …/releases/{version}/ — `ref`, `url`, `dateReleased`, `status`, and (org scope) `projects`."""
    org, release = await release_in_scope(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    fields = _release_fields(request, data, errors)
    status = sentry.validate_status(data, errors)
    refs = _project_refs(data, errors) if "projects" in data and "project" not in request.match_info else []
    if errors:
        raise BadRequest(errors)
    # Sentry applies a field only when its value is truthy; "open" is status 0, so it never
    # un-archives a release (organization_release_details.py, project_release_details.py).
    if status == "open":
        status = None
    # Sentry ignores `projects` here; linking them is what `releases finalize` callers expect.
    projects = await services.resolve_release_projects(backend(request), org, refs) if refs else []
    view = await services.update_release(backend(request), release, fields, status, projects)
    return json_response(sentry.release_json(view))


@requires(RELEASE_SCOPES)
async def delete_release(request: web.Request) -> web.Response:
    """DELETE …/releases/{version}/ — the release and all of its files."""
    _, release = await release_in_scope(request)
    await services.delete_release(backend(request), release)
    return web.Response(status=204)
