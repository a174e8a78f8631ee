"""Chunk upload: stream each `file` / `file_gzip` part of a chunk POST into a temp blob,
decoding gzip in the worker thread with a hard bound, then check each sha1 against its
filename. Validation order and messages are Sentry's (api/endpoints/chunk.py). No SQL.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from ..errors import BadRequest
from ..models import StoredBlob
from ..storage.blobs import BlobStore, StagedBlob
from .batching import LazySink, shielded, stream_part
from .multipart import MALFORMED, malformed, open_multipart, part_names

# Content-Encoding values a `file` part may carry. Sentry also takes zstd; relserver neither
# decodes nor advertises it, so clients never send it (they pick from `compression`).
SUPPORTED_ENCODINGS = frozenset({"gzip"})
# gzip with its header (wbits 16 + MAX_WBITS), as sentry-cli writes it.
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    chunk_size: int
    chunks_per_request: int
    max_request_size: int
    write_batch_size: int


@dataclass(slots=True)
class ReceivedChunk:
    temp: StagedBlob
    blob: StoredBlob
    # The part's filename: the sha1 the client claims for the decoded bytes.
    claimed: str


def chunk_error(message: str) -> BadRequest:
    """Chunk and assemble errors use `error`, not `detail`."""
    return BadRequest({"error": message})


class GzipSink:
    """Decompresses into a StagedBlob, never producing more than `limit` + 1 bytes."""

    def __init__(self, temp: StagedBlob, limit: int) -> None:
        self.temp = temp
        self._limit = limit
        self._inflate = zlib.decompressobj(_GZIP_WBITS)

    def write(self, data: bytes) -> None:
        try:
            while data:
                # max_length bounds the output of one call: a bomb stops one byte past the limit.
                out = self._inflate.decompress(data, self._limit + 1 - self.temp.size)
                self.temp.write(out)
                if self.temp.size > self._limit:
                    raise chunk_error("Chunk size too large")
                data = self._inflate.unconsumed_tail
                if self._inflate.eof:
                    return
        except zlib.error:
            raise chunk_error("Invalid gzip payload") from None

    def finish(self) -> StoredBlob:
        if not self._inflate.eof:
            raise chunk_error("Invalid gzip payload")
        return self.temp.finish()

    def discard(self) -> None:
        self.temp.discard()


async def receive_chunks(request: web.Request, blobstore: BlobStore, limits: ChunkLimits) -> list[ReceivedChunk]:
    """Read every chunk of the request; on any error nothing is left on disk."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding and encoding not in SUPPORTED_ENCODINGS:
        raise chunk_error("Unsupported Content-Encoding")
    if not request.body_exists or request.content_type != "multipart/form-data":
        return []
    reader = await open_multipart(request)
    chunks: list[ReceivedChunk] = []
    try:
        total = 0
        while (part := await _next_part(reader)) is not None:
            name, filename = part_names(part) if isinstance(part, BodyPartReader) else (None, None)
            if not isinstance(part, BodyPartReader) or name not in ("file", "file_gzip") or not filename:
                try:
                    await part.release()
                except MALFORMED as exc:
                    raise malformed(exc) from exc
                continue
            if name == "file_gzip" and encoding:
                raise chunk_error("Cannot combine Content-Encoding with file_gzip field")
            if len(chunks) >= limits.chunks_per_request:
                raise chunk_error("Too many chunks")
            try:
                chunk = await _receive_one(
                    part, filename, blobstore, limits, gzip=name == "file_gzip" or bool(encoding)
                )
            except MALFORMED as exc:
                raise malformed(exc) from exc
            chunks.append(chunk)
            total += chunk.blob.size
            if total > limits.max_request_size:
                raise chunk_error("Request too large")
    except BaseException:
        await shielded(asyncio.to_thread(_discard_all, chunks))
        raise
    return chunks


async def _receive_one(
    part: BodyPartReader, claimed: str, blobstore: BlobStore, limits: ChunkLimits, *, gzip: bool
) -> ReceivedChunk:
    too_large = lambda: chunk_error("Chunk size too large")  # noqa: E731
    if gzip:
        # The compressed bytes are bounded by the request limit, the decoded ones by the chunk size.
        gzipped = LazySink(lambda: GzipSink(blobstore.stage(), limits.chunk_size))
        blob = await stream_part(
            part, gzipped, max_size=limits.max_request_size, too_large=too_large, batch_size=limits.write_batch_size
        )
        return ReceivedChunk(temp=gzipped.target.temp, blob=blob, claimed=claimed)
    raw = LazySink(blobstore.stage)
    blob = await stream_part(
        part, raw, max_size=limits.chunk_size, too_large=too_large, batch_size=limits.write_batch_size
    )
    return ReceivedChunk(temp=raw.target, blob=blob, claimed=claimed)


async def _next_part(reader: MultipartReader) -> BodyPartReader | MultipartReader | None:
    try:
        return await reader.next()
    except MALFORMED as exc:
        raise malformed(exc) from exc


def _discard_all(chunks: list[ReceivedChunk]) -> None:
    for chunk in chunks:
        chunk.temp.discard()


def check_checksums(chunks: list[ReceivedChunk]) -> None:
    """The filename must be the lowercase sha1 of the decoded bytes, compared exactly."""
    for chunk in chunks:
        if chunk.blob.sha1 != chunk.claimed:
            raise chunk_error("Checksum mismatch")
