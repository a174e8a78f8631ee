"""Streams one multipart request into an `UploadForm`: text fields into a MultiDict, the
`file` part into a temp blob while hashing, or, when it ends within its first write batch,
into memory until the commit. Limits are enforced while the bytes arrive.

No SQL, no routing. The bytes of the file part never sit in memory beyond one batch, and
writing and hashing run in a worker thread (DESIGN invariants 3 and 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict

from . import sentry
from .blobstore import BlobStore, TempBlob
from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .models import StoredBlob

# Bytes asked of the multipart reader per read; batches for the worker thread are lists of
# these. 256 KiB (one default batch) took about a tenth less CPU per GiB than 64 KiB reads,
# in scripts/bench.py's large upload.
READ_CHUNK_SIZE = 256 * 1024

# Django's check on the boundary parameter (http/multipartparser.py).
_VALID_BOUNDARY = re.compile(r"[ -~]{0,200}[!-~]")

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

    temp: TempBlob
    blob: StoredBlob

    def store(self, blobstore: BlobStore) -> StoredBlob:
        """Rename into the content address (blocking)."""
        blobstore.commit(self.temp, self.blob)
        return self.blob

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
        """Hash, and write unless a blob with this sha1 exists (blocking)."""
        return blobstore.store_bytes(self.data)

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


# The Content-Disposition every client here sends: `form-data; name="…"[; filename="…"]` with
# no escapes. aiohttp's general parser costs ~0.2 ms a call (it compiles its patterns each
# time), so simple headers take this precompiled path and anything else goes to aiohttp.
_SIMPLE_DISPOSITION = re.compile(r'form-data; name="([^"\\%]*)"(?:; filename="([^"\\%]*)")?')


def part_names(part: BodyPartReader) -> tuple[str | None, str | None]:
    """(name, filename) of a part, parsing its Content-Disposition once."""
    header = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    if match := _SIMPLE_DISPOSITION.fullmatch(header):
        return match.group(1), match.group(2)
    return part.name, part.filename


def sanitize_file_name(filename: str) -> str | None:
    """Django's MultiPartParser.sanitize_file_name, which runs before Sentry sees the name."""
    name = html.unescape(filename)
    name = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return None if name in ("", ".", "..") else name


def bare_content_type(value: str | None) -> str:
    """The MIME type without parameters, lower-cased, as Django hands it to Sentry."""
    return sentry.header_text(value or "").split(";", 1)[0].strip().lower()


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


# Limits on each part's header block: aiohttp's defaults for HTTP headers, which
# `request.multipart()` would pass on from the server.
MAX_PART_HEADER_LINE = 8190
MAX_PART_HEADERS = 128


class FormDataReader(MultipartReader):
    """aiohttp's MultipartReader without its RFC 7578 `_charset_` step.

    aiohttp's `next()` runs its general Content-Disposition parser on every body's first
    part, only to see whether that part is named `_charset_`. The parser rebuilds an escape
    table on each call, which made it the largest single cost of a small upload on the loop
    thread. Django, which parses the body for Sentry (http/multipartparser.py), has no
    `_charset_` rule either: such a part is an ordinary field there and here. Everything else
    follows aiohttp's own sequence of steps.
    """

    async def next(self) -> MultipartReader | BodyPartReader | None:
        if self._at_eof:
            return None
        await self._maybe_release_last_part()
        if self._at_bof:
            await self._read_until_first_boundary()
            self._at_bof = False
        else:
            await self._read_boundary()
        if self._at_eof:
            return None
        self._last_part = await self.fetch_next_part()
        return self._last_part


async def open_multipart(request: web.Request) -> MultipartReader:
    """The request's multipart reader, or DRF's 400 for a missing or invalid boundary."""
    boundary = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, "")).parameters.get("boundary")
    if not boundary or not _VALID_BOUNDARY.fullmatch(boundary):
        # Django's MultiPartParserError, as DRF words it (a missing boundary prints as None).
        raise BadRequest(f"Multipart form parse error - Invalid boundary in multipart: {boundary}")
    try:
        return FormDataReader(
            request.headers, request.content, max_field_size=MAX_PART_HEADER_LINE, max_headers=MAX_PART_HEADERS
        )
    except ValueError as exc:
        raise BadRequest(f"Multipart form parse error - Invalid boundary in multipart: {boundary}") from exc


# What aiohttp raises for a body that breaks the multipart rules (bad part headers included).
MALFORMED = (ValueError, HttpProcessingError)


def malformed(exc: Exception) -> BadRequest:
    """A body that breaks off or does not follow the multipart rules (DRF's ParseError)."""
    return BadRequest(f"Multipart form parse error - {exc}")


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


class Sink(Protocol):
    """Where a streamed part goes; every method blocks and runs in a worker thread."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> StoredBlob: ...

    def discard(self) -> None: ...


S = TypeVar("S", bound=Sink)


class LazySink(Generic[S]):
    """Creates its sink on the first write, in the worker thread: a small part then costs one
    thread hop in all (create, write, fsync) instead of two."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self._factory = factory
        self._target: S | None = None

    @property
    def target(self) -> S:
        if self._target is None:
            self._target = self._factory()
        return self._target

    def write(self, data: bytes) -> None:
        self.target.write(data)

    def finish(self) -> StoredBlob:
        return self.target.finish()

    def discard(self) -> None:
        if self._target is not None:
            self._target.discard()


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
    sink = LazySink(blobstore.new_temp)
    blob = await stream_part(
        part,
        sink,
        max_size=limit,
        too_large=lambda: _file_too_large(limit),
        batch_size=limits.write_batch_size,
        head=head,
    )
    return SpooledContent(sink.target, blob)


async def stream_part(
    part: BodyPartReader,
    sink: Sink,
    *,
    max_size: int,
    too_large: Callable[[], Exception],
    batch_size: int,
    head: Sequence[bytes] = (),
) -> StoredBlob:
    """Socket → batches → sink (hash + write, in a thread) → fsync'd temp file.

    One batch is written while the next is read, so disk and network overlap and at most
    two batches are in memory. `head` is what the caller already read of the part (counted
    in `max_size`, which bounds the bytes read from the socket); on any failure the sink is
    discarded.
    """
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    try:
        # A batch is a list of the pieces as read: handed over without joining (no copy).
        batch = list(head)
        batched = size = sum(map(len, batch))
        while True:
            if batched >= batch_size:
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(None, _write_pieces, sink, batch)
                batch, batched = [], 0
            chunk = await part.read_chunk(READ_CHUNK_SIZE)
            if not chunk:
                break
            size += len(chunk)
            if size > max_size:
                raise too_large()
            batch.append(chunk)
            batched += len(chunk)
        if pending is not None:
            await pending
            pending = None
        return await asyncio.to_thread(_finish, sink, batch)
    except BaseException:
        await shielded(_discard_after(sink, pending))
        raise


def _write_pieces(sink: Sink, pieces: list[bytes]) -> None:
    for piece in pieces:
        sink.write(piece)


def _finish(sink: Sink, tail: list[bytes]) -> StoredBlob:
    _write_pieces(sink, tail)
    return sink.finish()


async def _discard_after(sink: Sink, pending: asyncio.Future[None] | None) -> None:
    if pending is not None:
        # The write in flight must end before the file is closed under it; its error, if
        # any, is already superseded by the one being raised.
        with contextlib.suppress(Exception):
            await pending
    await asyncio.to_thread(sink.discard)


async def shielded(cleanup: Awaitable[None]) -> None:
    """Run clean-up to the end even when the request task is being cancelled."""
    await asyncio.shield(asyncio.ensure_future(cleanup))
