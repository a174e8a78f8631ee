"""Downloads from the UI: always an attachment of opaque type, never rendered in the page's
origin (uploaded files are attacker-controlled), with the API's Range and ETag."""

from __future__ import annotations

from aiohttp import web

from .. import sentry
from ..api.download import BlobResponse
from ..auth import may_download
from ..models import BundleFile, ReleaseFile
from .common import blobstore, require, token


def download_response(request: web.Request, item: ReleaseFile | BundleFile) -> BlobResponse:
    # The API's own download rule for project scope (auth.may_download).
    require(may_download(token(request), organization_scope=False))
    name = item.path if isinstance(item, BundleFile) else item.name
    return BlobResponse(
        blobstore(request),
        item.blob_name,
        size=item.size,
        sha1=item.sha1,
        content_type="application/octet-stream",
        disposition=sentry.content_disposition(name),
        zip_range=item.zip_range,
    )
