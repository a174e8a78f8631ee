"""Assembly of uploaded chunks into a file, and reading the bundle zip it holds.

A bundle is `SYSB` + u32 version + a zip with `manifest.json` (symbolic's SourceBundle);
Python's zipfile finds the central directory from the end, so the prefix needs no special
case. Bundles are untrusted: every member count and size is checked against limits before
anything is unpacked. All functions block (file I/O, hashing, inflating) and run in a
worker thread. No HTTP, no SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import uuid
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..models import NewBundleFile, StoredBlob, ZipRange
from ..sentry.sourcemaps import normalize_debug_id
from ..storage.blobs import BlobStore, StagedBlob

COPY_SIZE = 1024 * 1024
# Members whose bytes can be served from inside the bundle (DESIGN D9): a byte range as is, or
# raw deflate inflated while streaming. symbolic writes deflate; anything else is extracted.
RANGE_COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# Members up to this size are read with one pread and inflated in one call (memory: twice this
# per indexing thread at most); larger ones stream through zipfile. Source maps of a real
# build are tens of KiB; 8 MiB is one chunk.
ONE_SHOT_MEMBER_SIZE = 8 * 1024 * 1024
# Threads indexing small members at once: the 2 cores of the machines this was measured on
# (scripts/bench.py build: the index took 0.22 s with 2, 0.40 s through zipfile on one).
INDEX_THREADS = 2
# The zip local file header (APPNOTE 4.3.7): 30 bytes, then the name and the extra field.
LOCAL_HEADER_SIZE = 30
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
# Below this size a high compression ratio is normal (a file of blank lines), not a bomb.
RATIO_EXEMPT_SIZE = 1024 * 1024

# Messages of Sentry's assembly (tasks/assemble.py).
NOT_ALL_CHUNKS = "Not all chunks available for assembling"
CHECKSUM_MISMATCH = "Reported checksum mismatch"
BUNDLE_INVALID = "the bundle is invalid"


class BundleError(Exception):
    """Assembly failed; the message is the `detail` clients see with state `error`."""


@dataclass(frozen=True, slots=True)
class BundleLimits:
    max_file_size: int
    max_members: int
    max_member_size: int
    max_expanded_size: int
    max_compression_ratio: int


@dataclass(slots=True)
class ExtractedMember:
    file: NewBundleFile
    # The member's own temp blob; None when its bytes stay in the bundle (`file.zip_range`).
    temp: StagedBlob | None


@dataclass(slots=True)
class Bundle:
    manifest: dict[str, Any]
    members: list[ExtractedMember]

    def discard(self) -> None:
        for member in self.members:
            if member.temp is not None:
                member.temp.discard()


def check_total_size(name: str, sizes: dict[str, int], chunks: list[str], max_file_size: int) -> None:
    total = sum(sizes.get(c, 0) for c in chunks)
    if total > max_file_size:
        raise BundleError(f"File {name} exceeds maximum size ({total} > {max_file_size})")


def concatenate(blobstore: BlobStore, chunks: list[str], checksum: str) -> tuple[StagedBlob, StoredBlob]:
    """Chunks (by their names in the blob store) in the given order (repeats allowed) into one
    temp file whose sha1 must match."""
    temp = blobstore.stage()
    try:
        for name in chunks:
            try:
                for piece in blobstore.open_range(name):
                    temp.write(piece)
            except FileNotFoundError:
                raise BundleError(NOT_ALL_CHUNKS) from None
        blob = temp.finish()
    except BaseException:
        temp.discard()
        raise
    if blob.sha1 != checksum:
        temp.discard()
        raise BundleError(CHECKSUM_MISMATCH)
    return temp, blob


def read_bundle(
    path: Path,
    blobstore: BlobStore,
    limits: BundleLimits,
    *,
    url_required: bool,
    index: bool = False,
    invalid: str = BUNDLE_INVALID,
    bad_manifest: str = BUNDLE_INVALID,
) -> Bundle:
    """Open the zip, read the manifest, check the limits, then read every member once.

    With `index` (artifact bundles, DESIGN D9) a stored or deflated member is only hashed while
    it inflates, and its place in the zip is kept: its bytes stay in the bundle's blob. Other
    members (and every member without `index`) are extracted to a temp blob of their own.

    `url_required`: artifact bundles skip entries without a `url` (newest Sentry); release
    bundles fall back to the path inside the zip (Sentry before artifact bundles).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BundleError(invalid) from None
    with archive, path.open("rb") as raw:
        manifest = _read_manifest(archive, bad_manifest)
        entries = _manifest_entries(manifest, url_required=url_required)
        # The file table now lives in `entries` (and soon the members); a 40 000-file build's
        # table is tens of MiB of dicts that would otherwise stay alive until the rows are written.
        manifest.pop("files", None)
        infos = _checked_infos(archive, entries, limits, invalid)
        # Small stored or deflated members are indexed in parallel; the rest go one by one.
        indexed = _index_small(raw, [i for i in infos if _is_small(i)], invalid) if index else {}
        members: list[ExtractedMember] = []
        try:
            for (member_path, url, file_type, headers), info in zip(entries, infos, strict=True):
                temp: StagedBlob | None = None
                zip_range: ZipRange | None = None
                if info.header_offset in indexed:
                    blob, zip_range = indexed[info.header_offset]
                elif index and info.compress_type in RANGE_COMPRESSIONS:
                    blob, zip_range = _index(archive, raw, info, invalid)
                else:
                    temp, blob = _extract(archive, info, blobstore, invalid)
                members.append(
                    ExtractedMember(
                        file=NewBundleFile(
                            path=member_path,
                            url=url,
                            file_type=file_type,
                            headers=headers,
                            debug_id=normalize_debug_id(_header(headers, "debug-id")),
                            blob=blob,
                            zip_range=zip_range,
                        ),
                        temp=temp,
                    )
                )
        except BaseException:
            Bundle(manifest=manifest, members=members).discard()
            raise
    return Bundle(manifest=manifest, members=members)


def _read_manifest(archive: zipfile.ZipFile, message: str) -> dict[str, Any]:
    try:
        info = archive.getinfo("manifest.json")
        if info.file_size > COPY_SIZE * 64:
            raise BundleError(f"{message}: manifest.json is too large ({info.file_size} bytes)")
        manifest = json.loads(archive.read(info))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError):
        raise BundleError(message) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", {}), dict):
        raise BundleError(message)
    return manifest


def _manifest_entries(
    manifest: dict[str, Any], *, url_required: bool
) -> list[tuple[str, str, str | None, dict[str, str]]]:
    entries = []
    for member_path, info in manifest.get("files", {}).items():
        info = info if isinstance(info, dict) else {}
        url = info.get("url")
        if not isinstance(url, str) or not url:
            if url_required:
                continue
            url = member_path
        file_type = info.get("type") if isinstance(info.get("type"), str) else None
        raw_headers = info.get("headers")
        headers = {str(k): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, dict) else {}
        entries.append((member_path, url, file_type, headers))
    return entries


def _checked_infos(
    archive: zipfile.ZipFile,
    entries: list[tuple[str, str, str | None, dict[str, str]]],
    limits: BundleLimits,
    invalid: str,
) -> list[zipfile.ZipInfo]:
    """Every limit is checked on the central directory, before a byte is inflated."""
    if len(entries) > limits.max_members:
        raise BundleError(f"the bundle has too many files ({len(entries)} > {limits.max_members})")
    infos = []
    total = 0
    for member_path, *_ in entries:
        try:
            info = archive.getinfo(member_path)
        except KeyError:
            raise BundleError(f"{invalid}: {member_path} is in the manifest but not in the archive") from None
        if info.file_size > limits.max_member_size:
            raise BundleError(
                f"the bundle member {member_path} is too large ({info.file_size} > {limits.max_member_size})"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_EXEMPT_SIZE and ratio > limits.max_compression_ratio:
            raise BundleError(
                f"the bundle member {member_path} is compressed suspiciously well "
                f"({ratio:.0f}:1 > {limits.max_compression_ratio}:1)"
            )
        total += info.file_size
        if total > limits.max_expanded_size:
            raise BundleError(f"the bundle expands to more than {limits.max_expanded_size} bytes")
        infos.append(info)
    return infos


def _extract(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, blobstore: BlobStore, invalid: str
) -> tuple[StagedBlob, StoredBlob]:
    temp = blobstore.stage()
    try:
        # zipfile never inflates past the declared size and checks the CRC at the end.
        with archive.open(info) as member:
            while piece := member.read(COPY_SIZE):
                temp.write(piece)
        return temp, temp.finish()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error):
        temp.discard()
        raise BundleError(f"{invalid}: {info.filename} cannot be read") from None
    except BaseException:
        temp.discard()
        raise


def _is_small(info: zipfile.ZipInfo) -> bool:
    encrypted = info.flag_bits & 0x1
    return info.compress_type in RANGE_COMPRESSIONS and info.file_size <= ONE_SHOT_MEMBER_SIZE and not encrypted


def _index_small(raw: BinaryIO, infos: list[zipfile.ZipInfo], invalid: str) -> dict[int, tuple[StoredBlob, ZipRange]]:
    """Index small members, keyed by their header offset: each read with one `pread`, inflated
    in one call, CRC-checked and hashed, on INDEX_THREADS threads (zlib and hashlib release the
    GIL; zipfile's per-member reader does not, and took twice as long on a real build)."""
    fd = raw.fileno()
    file_size = os.fstat(fd).st_size

    def run(part: list[zipfile.ZipInfo]) -> list[tuple[int, tuple[StoredBlob, ZipRange]]]:
        return [(info.header_offset, _index_one(fd, file_size, info, invalid)) for info in part]

    if len(infos) < INDEX_THREADS * 16:
        return dict(run(infos))
    parts = [infos[k::INDEX_THREADS] for k in range(INDEX_THREADS)]
    with ThreadPoolExecutor(INDEX_THREADS, thread_name_prefix="relserver-index") as pool:
        return {offset: found for part in pool.map(run, parts) for offset, found in part}


def _index_one(fd: int, file_size: int, info: zipfile.ZipInfo, invalid: str) -> tuple[StoredBlob, ZipRange]:
    """One small member from its raw bytes, checked as zipfile checks it: the local header's
    signature, the data inside the file, the inflated size and the CRC-32."""
    try:
        header = os.pread(fd, LOCAL_HEADER_SIZE, info.header_offset)
        if len(header) != LOCAL_HEADER_SIZE or header[:4] != LOCAL_HEADER_SIGNATURE:
            raise zipfile.BadZipFile(info.filename)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        offset = info.header_offset + LOCAL_HEADER_SIZE + name_length + extra_length
        if offset + info.compress_size > file_size:
            raise zipfile.BadZipFile(info.filename)
        data = os.pread(fd, info.compress_size, offset)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            # Never more than the declared size (+1 to notice a lie), whatever the data says.
            data = inflate.decompress(data, info.file_size + 1)
            if not inflate.eof:
                raise zipfile.BadZipFile(info.filename)
        if len(data) != info.file_size or zlib.crc32(data) != info.CRC:
            raise zipfile.BadZipFile(info.filename)
    except (zipfile.BadZipFile, OSError, zlib.error, struct.error):
        raise BundleError(f"{invalid}: {info.filename} cannot be read") from None
    digest = hashlib.sha1(data).hexdigest()  # noqa: S324 -- Sentry's file identity, not a security measure
    zip_range = ZipRange(
        offset=offset, compressed_size=info.compress_size, compression=info.compress_type, crc=info.CRC
    )
    return StoredBlob(sha1=digest, size=len(data)), zip_range


def _index(archive: zipfile.ZipFile, raw: BinaryIO, info: zipfile.ZipInfo, invalid: str) -> tuple[StoredBlob, ZipRange]:
    """Hash a member as it inflates (zipfile checks its CRC at the end) and find where its data
    starts: after the local header, whose name and extra fields may differ from the central
    directory's."""
    digest = hashlib.sha1()  # noqa: S324 -- Sentry's file identity, not a security measure
    size = 0
    try:
        with archive.open(info) as member:
            while piece := member.read(COPY_SIZE):
                digest.update(piece)
                size += len(piece)
        raw.seek(info.header_offset)
        header = raw.read(LOCAL_HEADER_SIZE)
        if len(header) != LOCAL_HEADER_SIZE or header[:4] != LOCAL_HEADER_SIGNATURE:
            raise zipfile.BadZipFile(info.filename)
        name_length, extra_length = struct.unpack("<HH", header[26:30])
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error, zlib.error):
        raise BundleError(f"{invalid}: {info.filename} cannot be read") from None
    offset = info.header_offset + LOCAL_HEADER_SIZE + name_length + extra_length
    zip_range = ZipRange(
        offset=offset, compressed_size=info.compress_size, compression=info.compress_type, crc=info.CRC
    )
    return StoredBlob(sha1=digest.hexdigest(), size=size), zip_range


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def bundle_id_for(manifest: dict[str, Any], checksum: str) -> str:
    """The manifest's debug_id, else a UUID made of the checksum (tasks/assemble.py)."""
    return normalize_debug_id(manifest.get("debug_id")) or str(uuid.UUID(checksum[:32]))
