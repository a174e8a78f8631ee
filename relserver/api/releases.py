"""Release handlers: create, list, detail, update and delete at organization and project scope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES
from ..errors import BadRequest, NotFound
from ..models import Project, Release, ReleaseCondition
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


def _status_filter(raw: str) -> str | None:
    """`status` of a list or details: open (the default), archived, or "" for both."""
    if not raw:
        return None
    if raw not in sentry.RELEASE_STATUSES:
        raise BadRequest("invalid value for status")
    return raw


def _conditions(query: str | None) -> tuple[ReleaseCondition, ...]:
    if not query:
        return ()
    try:
        return tuple(sentry.release_conditions(query))
    except sentry.InvalidSearchQuery as exc:
        raise BadRequest(str(exc)) from None


async def _environments(request: web.Request, org_id: int) -> list[str]:
    """The `environment` names; an unknown one is Sentry's 404 (EnvironmentMixin)."""
    names = request.query.getall("environment", [])
    if names and not await services.known_environments(backend(request), org_id, names):
        raise NotFound()
    return names


@requires(RELEASE_SCOPES)
async def create_organization_release(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/ (organization_releases.py)."""
    found = await creatable_organization(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    version = sentry.validate_version_field(data, errors)
    refs = _project_refs(data, errors)
    fields = _release_fields(request, data, errors)
    status = sentry.validate_status(data, errors)
    commits = sentry.validate_commit_fields(data, errors)
    if errors or version is None:
        raise BadRequest(errors)
    org, projects = await services.provision(backend(request), found, request.match_info["org"], refs)
    view, changed = await services.create_release(
        backend(request), org, version, projects, fields, status=status, commits=commits
    )
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
    status = sentry.validate_status(data, errors)
    # project_releases.py: its serializer has `commits` but neither `refs` nor `headCommits`.
    commits = sentry.validate_commit_fields(data, errors, with_refs=False)
    if errors or version is None:
        raise BadRequest(errors)
    org, projects = await services.provision(
        backend(request), found, request.match_info["org"], [] if project else [project_ref]
    )
    view, changed = await services.create_release(
        backend(request), org, version, [project or projects[0]], fields, status=status, commits=commits
    )
    return json_response(sentry.release_json(view), status=_created_or_reported(changed))


def _release_page(request: web.Request) -> sentry.Page:
    return sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))


@requires(RELEASE_SCOPES)
async def list_organization_releases(request: web.Request) -> web.Response:
    """GET /organizations/{org}/releases/ (organization_releases.py): `query` is a release
    search, `sort` date|semver|build, `status`, `project`, `environment`, a date range."""
    org = await organization(request)
    get = dict(request.query)
    params = sentry.list_params(get)
    in_projects = await services.requested_projects(
        backend(request), org, sentry.parse_project_ids(request.query.getall("project", []))
    )
    environments = await _environments(request, org.id)
    status = _status_filter(request.query.get("status", "open"))
    filters = services.ReleaseFilter(
        status=status,
        conditions=_conditions(request.query.get("query")),
        sort=sentry.list_sort(get),
        in_projects=tuple(in_projects),
        environments=tuple(environments),
        start=params.start,
        end=params.end,
        linked_only=True,
    )
    page = _release_page(request)
    found, has_more = await services.list_releases(backend(request), org, page, project=None, filters=filters)
    body = [
        sentry.release_json(v, with_health=params.with_health, with_adoption_stages=params.with_adoption_stages)
        for v in found
    ]
    return paginated_response(request, body, page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def list_project_releases(request: web.Request) -> web.Response:
    """GET /projects/{org}/{project}/releases/ — open releases, newest release date first;
    `query` a version substring; an unknown `environment` finds nothing (project_releases.py)."""
    org, project = await organization_and_project(request)
    page = _release_page(request)
    environments = request.query.getall("environment", [])
    query = request.query.get("query")
    filters = services.ReleaseFilter(
        conditions=(ReleaseCondition("contains", values=(query,)),) if query else (),
        environments=tuple(environments),
    )
    found, has_more = await services.list_releases(backend(request), org, page, project=project, filters=filters)
    return paginated_response(request, [sentry.release_json(v) for v in found], page, has_more=has_more)


async def _current_project_meta(
    request: web.Request, org_id: int, release: Release, project: Project | None
) -> dict[str, Any]:
    """organization_release_details.py: with a `project`, the release's neighbours there."""
    if project is None:
        return {}
    get = dict(request.query)
    sentry.date_range(get)
    environments = await _environments(request, org_id)
    if (request.query.get("sort") or "date") != "date":
        raise BadRequest(sentry.INVALID_SORT)
    found = await services.project_neighbours(
        backend(request),
        release,
        project,
        status=_status_filter(request.query.get("status", "open")) or "open",
        query=request.query.get("query"),
        environments=environments,
    )
    return sentry.current_project_meta(found.previous, found.next, found.first, found.last)


@requires(RELEASE_SCOPES)
async def release_details(request: web.Request) -> web.Response:
    """GET …/releases/{version}/ at either scope; at organization scope `project` (an id)
    adds currentProjectMeta (project_release_details.py has none)."""
    org, release = await release_in_scope(request)
    get = dict(request.query)
    with_health = sentry.check_health_params(get, check_stat=False)
    meta: dict[str, Any] = {}
    if "project" not in request.match_info:
        project = await services.meta_project(backend(request), org, request.query.get("project"))
        if project is None and with_health and request.query.get("project") not in (None, ""):
            raise BadRequest("Invalid project")
        meta = await _current_project_meta(request, org.id, release, project)
    view = await services.release_view(backend(request), release)
    body = sentry.release_json(
        view,
        current_project_meta=meta,
        with_health=with_health,
        with_adoption_stages=request.query.get("adoptionStages") == "1",
    )
    return json_response(body)


@requires(RELEASE_SCOPES)
async def update_release(request: web.Request) -> web.Response:
    """PUT …/releases/{version}/ — `ref`, `url`, `dateReleased`, `status`, and (org scope) `projects`."""
    org, release = await release_in_scope(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    fields = _release_fields(request, data, errors)
    status = sentry.validate_status(data, errors)
    refs = _project_refs(data, errors) if "projects" in data and "project" not in request.match_info else []
    # project_release_details.py's serializer has `commits` only.
    commits = sentry.validate_commit_fields(data, errors, with_refs="project" not in request.match_info)
    if errors:
        raise BadRequest(errors)
    # Sentry applies a field only when its value is truthy; "open" is status 0, so it never
    # un-archives a release (organization_release_details.py, project_release_details.py).
    if status == "open":
        status = None
    # Sentry ignores `projects` here; linking them is what `releases finalize` callers expect.
    projects = await services.resolve_release_projects(backend(request), org, refs) if refs else []
    view = await services.update_release(backend(request), release, fields, status, projects, commits)
    return json_response(sentry.release_json(view))


@requires(RELEASE_SCOPES)
async def delete_release(request: web.Request) -> web.Response:
    """DELETE …/releases/{version}/ — the release and all of its files."""
    _, release = await release_in_scope(request)
    await services.delete_release(backend(request), release)
    return web.Response(status=204)
