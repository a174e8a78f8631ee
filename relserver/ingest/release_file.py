"""Streams one multipart request into an `UploadForm`: text fields into a MultiDict, the
`file` part into a temp blob while hashing, or, when it ends within its first write batch,
into memory until the commit. Limits are enforced while the bytes arrive.

No SQL, no routing. The bytes of the file part never sit in memory beyond one batch, and
writing and hashing run in a worker thread (DESIGN invariants 3 and 4)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from multidict import MultiDict

from .. import sentry
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ..models import StoredBlob
from ..storage.blobs import BlobStore, StagedBlob
from .batching import READ_CHUNK_SIZE, LazySink, shielded, stream_part
from .multipart import MALFORMED, bare_content_type, malformed, open_multipart, part_names, sanitize_file_name

# Bodies DRF parses without a file part: Sentry then answers "Missing uploaded file".
_FORM_TYPES = frozenset({"application/json", "application/x-www-form-urlencoded"})


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_file_size: int
    max_field_size: int
    max_parts: int
    write_batch_size: int


@dataclass(slots=True)
class SpooledContent:
    """A file part streamed into a temp file, hashed and fsync'd as it arrived."""

    temp: StagedBlob
    blob: StoredBlob

    def store(self, blobstore: BlobStore) -> StoredBlob:
        """Into the blob store (a rename on disk, an upload to S3; blocking); the blob as stored."""
        return blobstore.promote(self.temp, self.blob)

    def discard(self) -> None:
        self.temp.discard()

    @property
    def on_disk(self) -> bool:
        return not self.temp.consumed


@dataclass(slots=True)
class MemoryContent:
    """A file part that arrived whole within one write batch. It stays in memory until the
    commit, which hashes it and, unless those bytes are already stored, writes it, all in one
    thread hop."""

    data: bytes

    def store(self, blobstore: BlobStore) -> StoredBlob:
        """Hash, and write (on disk: unless a blob with this sha1 exists; blocking)."""
        return blobstore.put_small(self.data)

    def discard(self) -> None:
        pass

    @property
    def on_disk(self) -> bool:
        return False


@dataclass(slots=True)
class UploadedFile:
    """The received `file` part, not yet in the blob store."""

    content: SpooledContent | MemoryContent
    filename: str
    content_type: str


@dataclass(slots=True)
class UploadForm:
    fields: MultiDict[str] = field(default_factory=MultiDict)
    file: UploadedFile | None = None

    async def discard(self) -> None:
        """Remove the temp file, if one is left (after a failed request or a dedup)."""
        if self.file is not None and self.file.content.on_disk:
            await asyncio.to_thread(self.file.content.discard)


async def receive_upload(request: web.Request, blobstore: BlobStore, limits: UploadLimits) -> UploadForm:
    """Read the whole request body into an UploadForm; the caller must `discard()` it."""
    form = UploadForm()
    if not request.body_exists:
        return form
    media_type = request.content_type
    if media_type in _FORM_TYPES:
        return form
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(sentry.header_text(request.headers.get(hdrs.CONTENT_TYPE, "")))
    reader = await open_multipart(request)
    try:
        await _read_parts(reader, form, blobstore, limits)
    except BaseException:
        await shielded(form.discard())
        raise
    return form


async def _read_parts(reader: MultipartReader, form: UploadForm, blobstore: BlobStore, limits: UploadLimits) -> None:
    parts = 0
    while True:
        try:
            part = await reader.next()
        except MALFORMED as exc:
            raise malformed(exc) from exc
        if part is None:
            return
        parts += 1
        if parts > limits.max_parts:
            raise PayloadTooLarge(f"Too many parts in the request: the limit is {limits.max_parts} parts")
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Multipart form parse error - nested multipart bodies are not supported")
        try:
            await _read_part(part, form, blobstore, limits)
        except MALFORMED as exc:
            raise malformed(exc) from exc


async def _read_part(part: BodyPartReader, form: UploadForm, blobstore: BlobStore, limits: UploadLimits) -> None:
    name, raw_filename = part_names(part)
    if not raw_filename:
        # Django: a part without a (non-empty) filename is a plain form field.
        form.fields.add(name or "", await _read_field(part, name, limits.max_field_size))
        return
    filename = sanitize_file_name(raw_filename)
    if name != "file" or filename is None:
        # Files under other names are not Sentry's business; Django drops unusable names.
        await _drain(part, limits.max_file_size)
        return
    content = await _receive_file(part, blobstore, limits)
    previous, form.file = (
        form.file,
        UploadedFile(
            content=content,
            filename=filename,
            content_type=bare_content_type(part.headers.get(hdrs.CONTENT_TYPE)),
        ),
    )
    if previous is not None and previous.content.on_disk:
        # request.data["file"] is the last `file` part (Django's MultiValueDict.__getitem__).
        await asyncio.to_thread(previous.content.discard)


def _file_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"File too large: the limit is {limit} bytes")


async def _read_field(part: BodyPartReader, name: str | None, limit: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_SIZE):
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(f"Form field {name!r} too large: the limit is {limit} bytes")
    charset = part.get_charset(default="utf-8")
    try:
        return sentry.without_surrogates(data.decode(charset, errors="replace"))
    except LookupError:
        return data.decode("utf-8", errors="replace")


async def _drain(part: BodyPartReader, limit: int) -> None:
    size = 0
    while chunk := await part.read_chunk(READ_CHUNK_SIZE):
        size += len(chunk)
        if size > limit:
            raise _file_too_large(limit)


async def _receive_file(
    part: BodyPartReader, blobstore: BlobStore, limits: UploadLimits
) -> SpooledContent | MemoryContent:
    """Small parts (up to one write batch) stay in memory; larger ones stream to a temp file."""
    limit = limits.max_file_size
    head: list[bytes] = []
    size = 0
    while size < limits.write_batch_size:
        chunk = await part.read_chunk(READ_CHUNK_SIZE)
        if not chunk:
            return MemoryContent(b"".join(head))
        head.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _file_too_large(limit)
    sink = LazySink(blobstore.stage)
    blob = await stream_part(
        part,
        sink,
        max_size=limit,
        too_large=lambda: _file_too_large(limit),
        batch_size=limits.write_batch_size,
        head=head,
    )
    return SpooledContent(sink.target, blob)
