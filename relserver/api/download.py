"""Streaming a stored blob to the client: sendfile when the transport allows, Range and ETag.

Sentry streams downloads without either; relserver adds `Range` (206) and an ETag (the
sha1, so it never changes for the same bytes) because browsers and curl use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zipfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from .. import sentry
from ..config import BLOB_REDIRECT_SECONDS
from ..errors import BlobStoreDown
from ..keys import blobstore_key, config_key
from ..models import BundleFile, ReleaseFile, ZipRange
from ..storage.blobs import BlobStore, BlobStoreUnavailable

log = logging.getLogger("relserver.api")

# Bytes read per hop when sendfile is unavailable (TLS, odd transports).
FALLBACK_CHUNK_SIZE = 256 * 1024


class BlobResponse(web.StreamResponse):
    """The bytes of one blob, or the requested range of them."""

    def __init__(
        self,
        blobs: BlobStore,
        blob_name: str,
        *,
        size: int,
        sha1: str,
        content_type: str,
        disposition: str,
        zip_range: ZipRange | None = None,
        redirect: timedelta | None = None,
    ) -> None:
        """`size`/`sha1` are the content's; with a `zip_range` the content is a member inside the
        blob `blob_name` (DESIGN D9): a byte range of it, or raw deflate inflated as it streams.
        Sent with sendfile from the blob's local path where the store has one, else read
        through `open_range`."""
        super().__init__()
        self._blobs = blobs
        self._blob_name = blob_name
        self._zip_range = zip_range
        # --blob-redirect: how long the presigned URL of a whole blob lives.
        self._redirect = redirect
        self._blob_size = size
        self._blob_etag = sha1
        self._blob_content_type = content_type
        self._blob_disposition = disposition
        self.headers[hdrs.ACCEPT_RANGES] = "bytes"
        self.etag = sha1

    def _matches(self, etags: tuple[object, ...] | None) -> bool:
        return etags is not None and any(getattr(e, "value", None) in (self._blob_etag, "*") for e in etags)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._matches(request.if_none_match):
            self.set_status(304)
            return await super().prepare(request)
        if self._redirect is not None and self._zip_range is None:
            try:
                url = await asyncio.to_thread(self._blobs.presigned_url, self._blob_name, self._redirect)
            except BlobStoreUnavailable as exc:
                return await self._unavailable(request, exc)
            if url is not None:
                return await self._redirect_to(request, url)
        self.content_type = self._blob_content_type
        self.headers[hdrs.CONTENT_DISPOSITION] = self._blob_disposition
        start, count = 0, self._blob_size
        if_range = request.headers.get(hdrs.IF_RANGE)
        if hdrs.RANGE in request.headers and (if_range is None or if_range.strip('"') == self._blob_etag):
            try:
                rng = request.http_range
            except ValueError:
                return await self._unsatisfiable(request)
            if rng.start is not None or rng.stop is not None:
                start, stop = _resolve(rng, self._blob_size)
                if start >= self._blob_size or stop <= start:
                    return await self._unsatisfiable(request)
                count = stop - start
                self.set_status(206)
                self.headers[hdrs.CONTENT_RANGE] = f"bytes {start}-{stop - 1}/{self._blob_size}"
        self.content_length = count
        path = self._blobs.local_path(self._blob_name)
        if path is None:
            # Opened before the status goes out (in a thread: a remote store's first GET),
            # so a store that fails answers a Sentry-shaped error instead of a cut body.
            pieces = None
            if count and request.method != "HEAD":
                try:
                    pieces = await asyncio.to_thread(self._open_pieces, start, count)
                except BlobStoreUnavailable as exc:
                    return await self._unavailable(request, exc)
            try:
                writer = await super().prepare(request)
                assert writer is not None
                if pieces is not None:
                    await self._send_pieces(writer, pieces, start, count)
                await self.write_eof()
                return writer
            finally:
                if pieces is not None:
                    # A client gone mid-way must still close the blob's reader: on the loop,
                    # for the same reason as the file below (an engine's reader closes a file
                    # or a connection).
                    _close_pieces(pieces)
        fobj = await _open_uncancellable(path)
        try:
            writer = await super().prepare(request)
            assert writer is not None
            if count and request.method != "HEAD":
                await self._send(request, writer, fobj, start, count)
            await self.write_eof()
            return writer
        finally:
            # On the loop, not in a thread: closing a file opened for reading is one close(2),
            # and a request cancelled while the server shuts down may find no thread left to
            # run it in, which would leave the file open.
            fobj.close()

    def _open_pieces(self, start: int, count: int) -> Iterator[bytes]:
        """The blob's bytes for this response through `open_range` (blocking)."""
        zip_range = self._zip_range
        if zip_range is not None and zip_range.compression == zipfile.ZIP_DEFLATED:
            return self._blobs.open_range(self._blob_name, zip_range.offset, zip_range.compressed_size)
        offset = zip_range.offset if zip_range is not None else 0
        return self._blobs.open_range(self._blob_name, offset + start, count)

    async def _send_pieces(self, writer: AbstractStreamWriter, pieces: Iterator[bytes], start: int, count: int) -> None:
        """Without a local file: the blob's bytes from `open_range`, a piece per thread hop."""
        zip_range = self._zip_range
        if zip_range is not None and zip_range.compression == zipfile.ZIP_DEFLATED:
            await _send_inflated(writer, _PieceReader(pieces), zip_range.compressed_size, start, count)
            return
        while piece := await asyncio.to_thread(next, pieces, b""):
            await writer.write(piece)

    async def _redirect_to(self, request: web.BaseRequest, url: str) -> AbstractStreamWriter | None:
        """A 302 to the presigned URL. The URL is on the bucket's origin, so a client following
        it drops its Authorization header (credentials do not follow a redirect to another
        origin, RFC 9110 section 15.4), which S3 would refuse beside the URL's own signature.
        The bytes' name is not carried (S3 would need a signed response-content-disposition)."""
        self.set_status(302)
        for header in (hdrs.ACCEPT_RANGES, hdrs.ETAG):
            self.headers.pop(header, None)
        self.headers[hdrs.LOCATION] = url
        self.headers[hdrs.CACHE_CONTROL] = "no-store"
        self.content_length = 0
        return await super().prepare(request)

    async def _unavailable(self, request: web.BaseRequest, exc: BlobStoreUnavailable) -> AbstractStreamWriter | None:
        """The store failed before a byte went out: the error middleware's 503, in its words
        (aiohttp prepares a returned response after the middlewares have run)."""
        log.error("%s %s: %s", request.method, request.path, exc)
        error = BlobStoreDown()
        body = json.dumps(error.body).encode()
        self.set_status(error.status)
        for header in (hdrs.CONTENT_DISPOSITION, hdrs.CONTENT_RANGE, hdrs.ACCEPT_RANGES, hdrs.ETAG):
            self.headers.pop(header, None)
        self.content_type = "application/json"
        self.content_length = len(body)
        writer = await super().prepare(request)
        await self.write(body)
        await self.write_eof()
        return writer

    async def _unsatisfiable(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        self.set_status(416)
        self.headers[hdrs.CONTENT_RANGE] = f"bytes */{self._blob_size}"
        self.content_length = 0
        return await super().prepare(request)

    async def _send(
        self, request: web.BaseRequest, writer: AbstractStreamWriter, fobj: BinaryIO, start: int, count: int
    ) -> None:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        zip_range = self._zip_range
        if zip_range is not None and zip_range.compression == zipfile.ZIP_DEFLATED:
            await asyncio.to_thread(fobj.seek, zip_range.offset)
            await _send_inflated(writer, fobj, zip_range.compressed_size, start, count)
            return
        # A stored member is a plain byte range of the bundle's blob.
        start += zip_range.offset if zip_range is not None else 0
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):
            # Zero-copy from the page cache; fallback=False keeps file reads off the loop.
            await loop.sendfile(transport, fobj, start, count, fallback=False)
            return
        await asyncio.to_thread(fobj.seek, start)
        while count > 0:
            chunk = await asyncio.to_thread(fobj.read, min(FALLBACK_CHUNK_SIZE, count))
            if not chunk:
                raise ConnectionResetError("blob shorter than recorded")
            await writer.write(chunk)
            count -= len(chunk)


def redirect_expiry(request: web.Request) -> timedelta | None:
    """How long a download's presigned URL lives, or None when downloads are proxied."""
    config = request.app[config_key]
    return timedelta(seconds=BLOB_REDIRECT_SECONDS) if config.blob_redirect else None


def stored_file_response(request: web.Request, item: ReleaseFile | BundleFile) -> BlobResponse:
    """A release file's or bundle member's bytes, read from wherever the catalog says they lie;
    a member downloads under the name of its path inside the bundle (project_release_file_details.py)."""
    return BlobResponse(
        request.app[blobstore_key],
        item.blob_name,
        size=item.size,
        sha1=item.sha1,
        content_type=sentry.download_content_type(item.headers),
        disposition=sentry.content_disposition(item.path if isinstance(item, BundleFile) else item.name),
        zip_range=item.zip_range,
        redirect=redirect_expiry(request),
    )


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _PieceReader:
    """`read(n)` over an `open_range` iterator: at most one piece held (blocking)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._held = b""

    def read(self, size: int, /) -> bytes:
        if not self._held:
            self._held = next(self._pieces, b"")
        out, self._held = self._held[:size], self._held[size:]
        return out


def _close_pieces(pieces: Iterator[bytes]) -> None:
    close = getattr(pieces, "close", None)
    if close is not None:
        close()


class _Inflater:
    """Raw deflate read from a member's data, a bounded piece per call: at most
    `FALLBACK_CHUNK_SIZE` compressed bytes in and out, so memory stays flat (invariant 3).
    Every call blocks (file read, inflate) and runs in a worker thread."""

    def __init__(self, fobj: _Readable, compressed_size: int) -> None:
        self._fobj = fobj
        self._left = compressed_size
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""

    def read(self, limit: int) -> bytes:
        """Up to `limit` inflated bytes; b"" only at the end of the member."""
        while True:
            if not self._pending and self._left > 0 and not self._inflate.eof:
                self._pending = self._fobj.read(min(FALLBACK_CHUNK_SIZE, self._left))
                if not self._pending:
                    raise ConnectionResetError("bundle blob shorter than recorded")
                self._left -= len(self._pending)
            out = self._inflate.decompress(self._pending, limit)
            self._pending = self._inflate.unconsumed_tail
            if out or self._inflate.eof or (not self._pending and self._left == 0):
                return out


async def _send_inflated(
    writer: AbstractStreamWriter, fobj: _Readable, compressed_size: int, start: int, count: int
) -> None:
    """Inflate in worker-thread hops, drop the first `start` bytes, send the next `count`."""
    inflater = _Inflater(fobj, compressed_size)
    skip = start
    while count > 0:
        piece = await asyncio.to_thread(inflater.read, min(FALLBACK_CHUNK_SIZE, skip or count))
        if not piece:
            raise ConnectionResetError("bundle member shorter than recorded")
        if skip:
            skip -= len(piece)
            continue
        await writer.write(piece)
        count -= len(piece)


async def _open_uncancellable(path: Path) -> BinaryIO:
    """Open in a thread; if the request is cancelled meanwhile, the file is closed anyway."""
    opening: asyncio.Future[BinaryIO] = asyncio.ensure_future(asyncio.to_thread(_open_binary, path))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


def _close_opened(done: asyncio.Future[BinaryIO]) -> None:
    if not done.cancelled() and done.exception() is None:
        done.result().close()


def _resolve(rng: slice, size: int) -> tuple[int, int]:
    """aiohttp's parsed Range (a slice) → [start, stop) within the file."""
    if rng.start is not None and rng.start < 0 and rng.stop is None:
        return max(size + rng.start, 0), size  # suffix range: the last N bytes
    start = rng.start or 0
    stop = size if rng.stop is None else min(rng.stop, size)
    return start, stop
