"""A release's commits and their files, the organization's repositories, and the previous
release with commits (what `sentry-cli releases set-commits` asks first)."""

from __future__ import annotations

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES
from .common import backend, json_response, organization, paginated_response, release_in_scope, requires


def _page(request: web.Request) -> sentry.Page:
    return sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))


@requires(RELEASE_SCOPES)
async def list_release_commits(request: web.Request) -> web.Response:
    """GET …/releases/{version}/commits/ (organization_release_commits.py): in the release's
    order, newest first; `repo_name` keeps one repository's."""
    _, release = await release_in_scope(request)
    page = _page(request)
    found, has_more = await services.list_release_commits(
        backend(request), release, page, repository=request.query.get("repo_name") or None
    )
    return paginated_response(request, [sentry.commit_json(c) for c in found], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def list_commit_files(request: web.Request) -> web.Response:
    """GET /organizations/{org}/releases/{version}/commitfiles/ (commit_filechange.py): by
    file name; `repo_id` or `repo_name` keeps one repository's."""
    _, release = await release_in_scope(request)
    page = _page(request)
    repo_id = sentry.parse_database_id(request.query.get("repo_id") or "")
    found, has_more = await services.list_commit_files(
        backend(request),
        release,
        page,
        repository_id=repo_id,
        repository=None if repo_id is not None else request.query.get("repo_name") or None,
    )
    return paginated_response(request, [sentry.commit_file_json(f) for f in found], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def list_repositories(request: web.Request) -> web.Response:
    """GET /organizations/{org}/repos/ (organization_repositories.py): by name."""
    org = await organization(request)
    page = _page(request)
    found, has_more = await services.list_repositories(
        backend(request), org, page, status=request.query.get("status", "active"), query=request.query.get("query")
    )
    return paginated_response(request, [sentry.repository_json(r) for r in found], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def previous_with_commits(request: web.Request) -> web.Response:
    """GET /organizations/{org}/releases/{version}/previous-with-commits/: the release JSON of
    the latest release with commits up to this one, or `{}`."""
    _, release = await release_in_scope(request)
    projects = await services.requested_projects(
        backend(request),
        await organization(request),
        sentry.parse_project_ids(request.query.getall("project", [])),
    )
    found = await services.previous_with_commits(backend(request), release, projects)
    if found is None:
        return json_response({})
    return json_response(sentry.release_json(await services.release_view(backend(request), found)))
