"""Chunk upload and the two assemble endpoints: what sentry-cli 2.x (chunked) and 3.x speak."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from .. import sentry, services
from ..auth import RELEASE_SCOPES
from ..errors import NotFound
from ..ingest.chunks import ChunkLimits, receive_chunks
from ..keys import assembler_key, blobstore_key, config_key
from ..services import assembly
from .common import backend, creatable_organization, json_response, public_origin, release_in_scope, requires

log = logging.getLogger(__name__)

# What the chunk-upload GET advertises per --upload-mode (DESIGN D5). `release_files` goes with
# `artifact_bundles`, or sentry-cli 2.x neither creates the release nor uploads (its traffic
# notes call the combination broken); "legacy" answers 404, which sends 2.x to per-file uploads.
ACCEPT = {
    "artifact-bundles": ["release_files", "artifact_bundles", "artifact_bundles_v2"],
    "release-bundles": ["release_files"],
}
# Only what relserver decodes: sentry-cli 2.x picks the strongest advertised codec.
COMPRESSION = ["gzip"]
# Sentry's advert (api/endpoints/chunk.py): parallel requests per client.
CONCURRENCY = 8


# sentry-cli 3.x uploads only through chunk upload; told there is none, it reports the
# misleading "organization not found". Its User-Agent is `sentry-cli/3.8.2`.
_SENTRY_CLI_3 = re.compile(r"sentry-cli/3\.")
LEGACY_MODE_VS_CLI_3 = (
    "sentry-cli 3.x has no per-file upload path; --upload-mode legacy leaves it nothing to upload "
    "(it will report the organization as not found): use --upload-mode artifact-bundles"
)


def _require_chunked(request: web.Request) -> None:
    if request.app[config_key].upload_mode not in ACCEPT:
        if _SENTRY_CLI_3.match(request.headers.get("User-Agent", "")):
            log.warning("%s (%s %s)", LEGACY_MODE_VS_CLI_3, request.method, request.path)
        raise NotFound(None)  # As if the route did not exist: a bare 404, like a Sentry without it.


@requires(RELEASE_SCOPES)
async def chunk_upload_options(request: web.Request) -> web.Response:
    """GET /organizations/{org}/chunk-upload/ — where and how to send chunks."""
    _require_chunked(request)
    # The options describe the server, and the chunk POST that follows creates the organization
    # on first use: an organization that may be created is answered for, not created here.
    org = await creatable_organization(request)
    slug = org.slug if org else request.match_info["org"]
    config = request.app[config_key]
    return json_response(
        {
            # Absolute, on the origin the client used: the newest JS uploader refuses anything else.
            "url": f"{public_origin(request)}/api/0/organizations/{slug}/chunk-upload/",
            "chunkSize": config.chunk_size,
            "chunksPerRequest": config.chunks_per_request,
            "maxFileSize": config.max_file_size,
            "maxRequestSize": config.max_request_size,
            "concurrency": CONCURRENCY,
            "hashAlgorithm": "sha1",
            "compression": COMPRESSION,
            "accept": ACCEPT[config.upload_mode],
        }
    )


@requires(RELEASE_SCOPES)
async def upload_chunks(request: web.Request) -> web.Response:
    """POST /organizations/{org}/chunk-upload/ — `file`/`file_gzip` parts named by their sha1."""
    _require_chunked(request)
    org = await creatable_organization(request)
    config = request.app[config_key]
    limits = ChunkLimits(
        chunk_size=config.chunk_size,
        chunks_per_request=config.chunks_per_request,
        max_request_size=config.max_request_size,
        write_batch_size=config.write_batch_size,
    )
    chunks = await receive_chunks(request, request.app[blobstore_key], limits)
    await services.store_chunks(backend(request), org, request.match_info["org"], chunks)
    return web.Response(status=200)


async def _assemble_body(request: web.Request, schema: dict[str, Any], messages: dict[str, str] | None) -> Any:
    return sentry.validate_assemble_body(await request.read(), schema, messages)


@requires(RELEASE_SCOPES)
async def assemble_artifact_bundle(request: web.Request) -> web.Response:
    """POST /organizations/{org}/artifactbundle/assemble/ (organization_artifactbundle_assemble.py)."""
    _require_chunked(request)
    org = await creatable_organization(request)
    data = await _assemble_body(request, sentry.ARTIFACT_BUNDLE_ASSEMBLE_SCHEMA, sentry.ARTIFACT_BUNDLE_FIELD_ERRORS)
    answer = await assembly.assemble_artifact_bundle(request.app[assembler_key], org, request.match_info["org"], data)
    return json_response(answer)


@requires(RELEASE_SCOPES)
async def assemble_release_bundle(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/{version}/assemble/ (organization_release_assemble.py)."""
    _require_chunked(request)
    org, release = await release_in_scope(request)
    data = await _assemble_body(request, sentry.RELEASE_ASSEMBLE_SCHEMA, None)
    return json_response(await assembly.assemble_release_bundle(request.app[assembler_key], org, release, data))
