"""Sentry's artifact-bundle endpoints and the artifact lookup ("would Sentry find my map?")."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES, may_download
from ..errors import APIError, BadRequest, PermissionDenied
from ..keys import blobstore_key, token_key
from ..models import Organization, Project
from ..sentry.sourcemaps import normalize_debug_id
from .common import backend, json_response, organization_and_project, paginated_response, public_origin, requires
from .download import BlobResponse, redirect_expiry, stored_file_response

# ArtifactBundlesEndpoint: OffsetPaginator(default_per_page=10) (api/endpoints/artifact_bundles.py).
BUNDLES_PER_PAGE = 10


async def _project_scope(request: web.Request) -> tuple[Organization, Project]:
    org, project = await organization_and_project(request)
    assert project is not None
    return org, project


@requires(RELEASE_SCOPES)
async def list_artifact_bundles(request: web.Request) -> web.Response:
    """GET /projects/{org}/{project}/files/artifact-bundles/ — `query`, `sortBy`, 10 per page."""
    org, project = await _project_scope(request)
    page = sentry.offset_page(request.query.get("per_page", str(BUNDLES_PER_PAGE)), request.query.get("cursor"))
    found, has_more = await services.list_artifact_bundles(
        backend(request),
        org,
        project,
        page,
        query=request.query.get("query"),
        sort=request.query.get("sortBy", "-date_added"),
    )
    return paginated_response(request, [sentry.artifact_bundle_json(b) for b in found], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def delete_artifact_bundle(request: web.Request) -> web.Response:
    """DELETE …/files/artifact-bundles/?bundleId= — unlink this project, delete when orphaned."""
    org, project = await _project_scope(request)
    await services.delete_artifact_bundle(backend(request), org, project, request.query.get("bundleId") or None)
    # An unknown bundle id is a 204 as well in the newest Sentry.
    return web.Response(status=204)


@requires(RELEASE_SCOPES)
async def list_bundle_files(request: web.Request) -> web.Response:
    """GET …/artifact-bundles/{bundle_id}/files/ — the bundle, and a page of its files by path."""
    org, project = await _project_scope(request)
    bundle = await services.bound_bundle(backend(request), org, project, request.match_info["bundle_id"])
    page = sentry.offset_page(
        request.query.get("per_page"), request.query.get("cursor"), max_offset=sentry.MAX_RELEASE_FILES_OFFSET
    )
    files, has_more = await services.list_bundle_files(backend(request), bundle, page, query=request.query.get("query"))
    return paginated_response(request, sentry.bundle_files_json(bundle, files), page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def download_bundle_file(request: web.Request) -> web.StreamResponse:
    """GET …/artifact-bundles/{bundle_id}/files/{file_id}/ — always the bytes."""
    org, project = await _project_scope(request)
    if not may_download(request[token_key], organization_scope=False):
        raise APIError({"error": "You don't have the permissions to download this file"}, status=403)
    raw_id = request.match_info["file_id"]
    path = sentry.decode_bundle_file_id(raw_id)
    if path is None:
        raise BadRequest({"error": f"The file_id {raw_id} is invalid"})
    bundle = await services.bound_bundle(backend(request), org, project, request.match_info["bundle_id"])
    return stored_file_response(request, await services.bundle_member(backend(request), bundle, path))


@requires(RELEASE_SCOPES)
async def artifact_lookup(request: web.Request) -> web.StreamResponse:
    """GET /projects/{org}/{project}/artifact-lookup/ (api/endpoints/artifact_lookup.py)."""
    org, project = await _project_scope(request)
    if "download" in request.query:
        return await _lookup_download(request, org, project, request.query["download"])
    hits = await services.artifact_lookup(
        backend(request),
        org,
        project,
        debug_id=normalize_debug_id(request.query.get("debug_id")),
        url=request.query.get("url") or None,
        version=request.query.get("release") or None,
        dist=request.query.get("dist") or None,
    )
    base = f"{public_origin(request)}{quote(request.path)}?download="
    return json_response([sentry.lookup_hit_json(hit, base) for hit in hits])


async def _lookup_download(
    request: web.Request, org: Organization, project: Project, target: str
) -> web.StreamResponse:
    if not may_download(request[token_key], organization_scope=False):
        raise PermissionDenied(None)
    found = await services.lookup_download(backend(request), org, project, target)
    return BlobResponse(
        request.app[blobstore_key],
        found.blob_name,
        size=found.size,
        sha1=found.sha1,
        content_type="application/octet-stream",
        disposition=sentry.content_disposition(found.name),
        zip_range=found.zip_range,
        redirect=redirect_expiry(request),
    )
