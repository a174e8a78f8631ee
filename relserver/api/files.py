"""Release-file handlers (project and organization scope share them)."""

from __future__ import annotations

from aiohttp import web

from .. import sentry, service
from ..auth import RELEASE_SCOPES
from ..keys import blobstore_key, config_key
from ..upload import UploadLimits, receive_upload
from .common import backend, json_response, release_in_scope, requires


@requires(RELEASE_SCOPES)
async def upload_release_file(request: web.Request) -> web.Response:
    """POST …/releases/{version}/files/ — Sentry's single-file upload (spec §6.2)."""
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
        release_file = await service.upload_release_file(backend(request), org, release, form)
    finally:
        # After a commit the temp file has been renamed away; this only removes leftovers.
        await form.discard()
    return json_response(sentry.release_file_json(release_file), status=201)
