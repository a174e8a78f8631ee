"""Sentry's artifact-bundle endpoints and the artifact lookup ("would Sentry find my map?")."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES, may_download
from ..errors import APIError, BadRequest, NotFound, PermissionDenied
from ..ingest.bundle_zip import normalize_debug_id
from ..keys import blobstore_key, token_key
from ..models import ArtifactBundle, Organization, Project
from .common import backend, json_response, organization_and_project, paginated_response, public_origin, requires
from .download import BlobResponse, bundle_member_response

# ArtifactBundlesEndpoint: OffsetPaginator(default_per_page=10) (api/endpoints/artifact_bundles.py).
BUNDLES_PER_PAGE = 10
# query_artifact_bundles_containing_file (debug_files/artifact_bundles.py): MAX_BUNDLES_QUERY.
MAX_BUNDLES_QUERY = 5
# ProjectArtifactLookupEndpoint: MAX_RELEASEFILES_QUERY.
MAX_RELEASEFILES_QUERY = 10


async def _project_scope(request: web.Request) -> tuple[Organization, Project]:
    org, project = await organization_and_project(request)
    assert project is not None
    return org, project


@requires(RELEASE_SCOPES)
async def list_artifact_bundles(request: web.Request) -> web.Response:
    """GET /projects/{org}/{project}/files/artifact-bundles/ — `query`, `sortBy`, 10 per page."""
    org, project = await _project_scope(request)
    sort = request.query.get("sortBy", "-date_added")
    if sort not in ("date_added", "-date_added", "date_modified", "-date_modified"):
        # InvalidSortByParameter is a SentryAPIException: its detail is an object.
        raise BadRequest(
            {
                "detail": {
                    "code": "invalid_sort_by_parameter",
                    "message": "You can either sort via 'date_added' or 'date_modified'",
                    "extra": {},
                }
            }
        )
    page = sentry.offset_page(request.query.get("per_page", str(BUNDLES_PER_PAGE)), request.query.get("cursor"))
    found = await backend(request).store.list_artifact_bundles(
        org.id, project.id, query=request.query.get("query"), order=sort, offset=page.offset, limit=page.limit + 1
    )
    items = [sentry.artifact_bundle_json(b) for b in found[: page.limit]]
    return paginated_response(request, items, page, has_more=len(found) > page.limit)


@requires(RELEASE_SCOPES)
async def delete_artifact_bundle(request: web.Request) -> web.Response:
    """DELETE …/files/artifact-bundles/?bundleId= — unlink this project, delete when orphaned."""
    org, project = await _project_scope(request)
    bundle_id = request.query.get("bundleId") or None
    if bundle_id is None:
        raise NotFound({"error": f"Supplied an invalid bundle_id {bundle_id}"})
    b = backend(request)
    removed = await b.store.remove_artifact_bundle(org.id, project.id, bundle_id, services.blob_unlinker(b))
    if removed is False:
        raise NotFound(
            {"error": f"Artifact bundle with {bundle_id} found but it is not connected to project {project.id}"}
        )
    # An unknown bundle id is a 204 as well in the newest Sentry.
    return web.Response(status=204)


async def _bound_bundle(request: web.Request, org: Organization, project: Project) -> ArtifactBundle:
    bundle_id = request.match_info["bundle_id"]
    bundle = await backend(request).store.get_artifact_bundle(org.id, project.id, bundle_id)
    if bundle is None:
        raise BadRequest(
            {"error": f"The artifact bundle with {bundle_id} is not bound to this project or doesn't exist"}
        )
    return bundle


@requires(RELEASE_SCOPES)
async def list_bundle_files(request: web.Request) -> web.Response:
    """GET …/artifact-bundles/{bundle_id}/files/ — the bundle, and a page of its files by path."""
    org, project = await _project_scope(request)
    bundle = await _bound_bundle(request, org, project)
    page = sentry.offset_page(
        request.query.get("per_page"), request.query.get("cursor"), max_offset=sentry.MAX_RELEASE_FILES_OFFSET
    )
    files = await backend(request).store.list_bundle_files(
        bundle.id, query=request.query.get("query"), offset=page.offset, limit=page.limit + 1
    )
    body: dict[str, Any] = {
        "bundleId": bundle.bundle_id,
        "date": sentry.artifact_bundle_json(bundle)["date"],
        "dateModified": sentry.artifact_bundle_json(bundle)["dateModified"],
        "fileCount": bundle.file_count,
        "associations": sentry.bundle_associations(bundle),
        "files": [sentry.bundle_file_json(f) for f in files[: page.limit]],
    }
    return paginated_response(request, body, page, has_more=len(files) > page.limit)


@requires(RELEASE_SCOPES)
async def download_bundle_file(request: web.Request) -> web.StreamResponse:
    """GET …/artifact-bundles/{bundle_id}/files/{file_id}/ — always the bytes."""
    org, project = await _project_scope(request)
    if not may_download(request[token_key], organization_scope=False):
        raise APIError({"error": "You don't have the permissions to download this file"}, status=403)
    raw_id = request.match_info["file_id"]
    try:
        path = base64.urlsafe_b64decode(raw_id.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError, binascii.Error):
        raise BadRequest({"error": f"The file_id {raw_id} is invalid"}) from None
    bundle = await _bound_bundle(request, org, project)
    entry = await backend(request).store.get_bundle_file(bundle.id, path)
    if entry is None:
        raise NotFound({"error": f"The file {path} can't be found in the artifact bundle"})
    return bundle_member_response(request, entry)


@requires(RELEASE_SCOPES)
async def artifact_lookup(request: web.Request) -> web.StreamResponse:
    """GET /projects/{org}/{project}/artifact-lookup/ (api/endpoints/artifact_lookup.py)."""
    org, project = await _project_scope(request)
    if "download" in request.query:
        return await _lookup_download(request, org, project, request.query["download"])
    store = backend(request).store
    base = f"{public_origin(request)}{quote(request.path)}?download="
    debug_id = normalize_debug_id(request.query.get("debug_id"))
    url = request.query.get("url") or None
    version = request.query.get("release") or None
    dist = request.query.get("dist") or None
    found: dict[int, str] = {}
    if debug_id:
        for bundle in await store.bundles_with_debug_id(org.id, project.id, debug_id):
            found[bundle.id] = "debug-id"
    if not found and version:
        for bundle in await store.bundles_for_release(
            org.id, project.id, version, dist, url=None, limit=MAX_BUNDLES_QUERY
        ):
            found[bundle.id] = "release"
        if url:
            for bundle in await store.bundles_for_release(
                org.id, project.id, version, dist, url=url, limit=MAX_BUNDLES_QUERY
            ):
                found[bundle.id] = "index"
    results: list[dict[str, Any]] = [
        {"id": f"artifact_bundle/{pk}", "type": "bundle", "url": f"{base}artifact_bundle/{pk}", "resolved_with": how}
        for pk, how in sorted(found.items())
    ]
    if not found and version and url:
        # No bundle: Sentry falls back to individual release files whose name contains the URL.
        release = await store.get_release(org.id, version)
        if release is not None and await store.is_release_linked(release.id, project.id):
            for f in await store.release_files_matching_url(release.id, url, MAX_RELEASEFILES_QUERY):
                if dist is None or f.dist == dist:
                    results.append(
                        {
                            "id": f"release_file/{f.id}",
                            "type": "file",
                            "url": f"{base}release_file/{f.id}",
                            "abs_path": f.name,
                            "headers": f.headers,
                            "resolved_with": "release-old",
                        }
                    )
    return json_response(results)


async def _lookup_download(
    request: web.Request, org: Organization, project: Project, target: str
) -> web.StreamResponse:
    if not may_download(request[token_key], organization_scope=False):
        raise PermissionDenied(None)
    kind, _, raw_pk = target.partition("/")
    pk = sentry.parse_database_id(raw_pk) if raw_pk.isascii() and raw_pk.isdigit() else None
    if pk is None:
        raise NotFound(None)
    store = backend(request).store
    blobstore = request.app[blobstore_key]
    if kind == "artifact_bundle":
        bundle = await store.get_artifact_bundle_by_pk(org.id, project.id, pk)
        if bundle is None:
            raise NotFound(None)
        size = (await store.chunk_sizes([bundle.checksum]))[bundle.checksum]
        return BlobResponse(
            blobstore.path_for(bundle.checksum),
            size=size,
            sha1=bundle.checksum,
            content_type="application/octet-stream",
            disposition=sentry.content_disposition(f"artifact_bundle_{bundle.bundle_id}.zip"),
        )
    if kind == "release_file":
        release_file = await store.get_release_file_in_project(project.id, pk)
        if release_file is None:
            raise NotFound(None)
        return BlobResponse(
            blobstore.path_for(release_file.sha1),
            size=release_file.size,
            sha1=release_file.sha1,
            content_type="application/octet-stream",
            disposition=sentry.content_disposition(release_file.name),
        )
    raise NotFound(None)
