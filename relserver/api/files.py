"""Release-file handlers (project and organization scope share them)."""

from __future__ import annotations

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES, may_download
from ..errors import PermissionDenied
from ..ingest.release_file import UploadLimits, receive_upload
from ..keys import blobstore_key, config_key, token_key
from .common import (
    backend,
    json_response,
    organization_and_project,
    paginated_response,
    read_data,
    release_in_scope,
    requires,
)
from .download import stored_file_response


@requires(RELEASE_SCOPES)
async def list_release_files(request: web.Request) -> web.Response:
    """GET …/releases/{version}/files/ — by name, `query` and `checksum` filters, Sentry's cursors."""
    org, release = await release_in_scope(request)
    page = sentry.offset_page(
        request.query.get("per_page"), request.query.get("cursor"), max_offset=sentry.MAX_RELEASE_FILES_OFFSET
    )
    files, has_more = await services.list_release_files(
        backend(request),
        org,
        release,
        page,
        queries=request.query.getall("query", []),
        checksums=request.query.getall("checksum", []),
    )
    return paginated_response(request, [services.file_json(f) for f in files], page, has_more=has_more)


@requires(RELEASE_SCOPES)
async def upload_release_file(request: web.Request) -> web.Response:
    """POST …/releases/{version}/files/ — Sentry's single-file upload (project_release_files.py)."""
    org, release = await release_in_scope(request)
    config = request.app[config_key]
    limits = UploadLimits(
        max_file_size=config.max_file_size,
        max_field_size=config.max_field_size,
        max_parts=config.max_parts,
        write_batch_size=config.write_batch_size,
    )
    form = await receive_upload(request, request.app[blobstore_key], limits)
    try:
        release_file = await services.upload_release_file(backend(request), org, release, form)
    finally:
        # After a commit the temp file has been renamed away; this only removes leftovers.
        await form.discard()
    return json_response(sentry.release_file_json(release_file), status=201)


@requires(RELEASE_SCOPES)
async def release_file_details(request: web.Request) -> web.StreamResponse:
    """GET …/files/{file_id}/ — the JSON, or the bytes when `download` is present at all."""
    org, release = await release_in_scope(request)
    item = await services.get_any_release_file(backend(request), org, release, request.match_info["file_id"])
    if "download" not in request.query:
        return json_response(services.file_json(item))
    # Looked up first, so a missing file is a 404 even for those who may not download.
    if not may_download(request[token_key], organization_scope="project" not in request.match_info):
        raise PermissionDenied(None)  # Sentry answers this 403 with an empty body.
    return stored_file_response(request, item)


@requires(RELEASE_SCOPES)
async def rename_release_file(request: web.Request) -> web.Response:
    """PUT …/files/{file_id}/ with `name`."""
    _, release = await release_in_scope(request)
    data = await read_data(request)
    release_file = await services.rename_release_file(backend(request), release, request.match_info["file_id"], data)
    return json_response(sentry.release_file_json(release_file))


@requires(RELEASE_SCOPES)
async def delete_release_file(request: web.Request) -> web.Response:
    """DELETE …/files/{file_id}/ — the row, and the blob once nothing else uses it."""
    org, release = await release_in_scope(request)
    await services.delete_release_file(backend(request), org, release, request.match_info["file_id"])
    return web.Response(status=204)


@requires(RELEASE_SCOPES)
async def delete_all_release_files(request: web.Request) -> web.Response:
    """DELETE …/files/source-maps/?name={version} — every file of one release."""
    org, project = await organization_and_project(request)
    await services.delete_all_release_files(backend(request), org, project, request.query.get("name", ""))
    return web.Response(status=204)
