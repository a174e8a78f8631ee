"""The blob store port's contract, run against every engine (DESIGN D8).

Engines: `disk`; `disk` without a local path, which takes the `open_range` road an object
store takes (its downloads then go through `BlobResponse`'s streaming path); and `s3`, a fresh
prefix of the session's real S3 server (SeaweedFS, signatures checked).
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relserver.api.download import BlobResponse
from relserver.models import StoredBlob, ZipRange
from relserver.storage import blobs as blob_port
from relserver.storage.blobs import BlobStore
from relserver.storage.blobs.disk import DiskBlobStore
from relserver.storage.blobs.s3_config import S3Settings


class PathlessDiskBlobStore(DiskBlobStore):
    """The disk engine, but without the zero-copy shortcut: every read is `open_range`."""

    def local_path(self, sha1: str) -> Path | None:
        return None


def _disk(request: pytest.FixtureRequest) -> BlobStore:
    root: Path = request.getfixturevalue("tmp_path")
    return DiskBlobStore(root / "blobs", root / "tmp", fsync=True)


def _pathless_disk(request: pytest.FixtureRequest) -> BlobStore:
    root: Path = request.getfixturevalue("tmp_path")
    return PathlessDiskBlobStore(root / "blobs", root / "tmp", fsync=False)


def _s3(request: pytest.FixtureRequest) -> BlobStore:
    # The server fixtures first: they skip (or fail under CI) when SeaweedFS or obstore is missing.
    url: str = request.getfixturevalue("s3_blob_url")
    settings: S3Settings = request.getfixturevalue("s3_settings")
    root: Path = request.getfixturevalue("tmp_path")
    from relserver.storage.blobs.s3 import S3BlobStore

    return S3BlobStore(url, root / "tmp", settings)


# Each engine, unprepared, from the fixtures it needs.
ENGINES: dict[str, Callable[[pytest.FixtureRequest], BlobStore]] = {
    "disk": _disk,
    "disk-no-local-path": _pathless_disk,
    "s3": _s3,
}


@pytest.fixture(params=sorted(ENGINES))
def blobs(request: pytest.FixtureRequest) -> BlobStore:
    store = ENGINES[request.param](request)
    store.prepare()
    return store


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def stored(blobs: BlobStore, data: bytes) -> StoredBlob:
    staged = blobs.stage()
    for i in range(0, len(data), 1000):
        staged.write(data[i : i + 1000])
    return blobs.promote(staged, staged.finish())


DATA = bytes(range(256)) * 2000  # 512 000 bytes: more than one read piece


def test_a_promoted_blob_is_its_sha1_and_reads_back_exactly(blobs: BlobStore) -> None:
    blob = stored(blobs, DATA)
    assert (blob.sha1, blob.size) == (sha1(DATA), len(DATA))
    assert blobs.exists(blob.name)
    assert b"".join(blobs.open_range(blob.name)) == DATA


def test_a_content_addressed_store_names_a_blob_by_its_sha1_and_a_keyed_one_at_random(blobs: BlobStore) -> None:
    """Invariant 6 and DESIGN D10: disk names are the sha1 the server computed; S3 names are
    random, so no process ever writes or deletes a name another process may be using."""
    first, second = stored(blobs, DATA), stored(blobs, DATA)
    if blobs.content_addressed:
        assert first.key is None and first.name == second.name == sha1(DATA)
    else:
        assert first.key and second.key and first.key != second.key
        assert sha1(DATA) not in first.name
        assert sorted(blobs.iter_names()) == sorted([first.name, second.name])


def test_promoting_bytes_already_stored_drops_the_staged_copy(blobs: BlobStore) -> None:
    first = stored(blobs, DATA)
    staged = blobs.stage()
    staged.write(DATA)
    again = blobs.promote(staged, staged.finish())
    assert staged.consumed and not staged.path.exists()
    assert blobs.stale_staged() == []
    if blobs.content_addressed:
        # One copy: the same name.
        assert list(blobs.iter_names()) == [first.name] == [again.name]


def test_put_small_stores_and_answers_its_identity(blobs: BlobStore) -> None:
    small = blobs.put_small(b"small")
    assert (small.sha1, small.size) == (sha1(b"small"), 5)
    assert b"".join(blobs.open_range(small.name)) == b"small"
    again = blobs.put_small(b"small")
    if blobs.content_addressed:
        assert again == small and list(blobs.iter_names()) == [sha1(b"small")]


def test_iter_names_older_than_leaves_out_what_was_written_since(blobs: BlobStore) -> None:
    from datetime import UTC, datetime, timedelta

    blob = stored(blobs, b"fresh")
    assert list(blobs.iter_names(older_than=datetime.now(UTC) - timedelta(minutes=5))) == []
    assert list(blobs.iter_names(older_than=datetime.now(UTC) + timedelta(minutes=5))) == [blob.name]


@pytest.mark.parametrize(
    ("start", "count"), [(0, None), (0, 0), (1, 10), (262_143, 3), (500_000, None), (511_999, 5), (600_000, 10)]
)
def test_open_range_reads_exactly_the_window_asked_for(blobs: BlobStore, start: int, count: int | None) -> None:
    blob = stored(blobs, DATA)
    pieces = list(blobs.open_range(blob.name, start, count))
    assert b"".join(pieces) == DATA[start : None if count is None else start + count]
    assert all(len(p) <= 256 * 1024 for p in pieces)


def test_a_deleted_blob_is_gone_and_deleting_it_again_is_fine(blobs: BlobStore) -> None:
    blob = stored(blobs, DATA)
    blobs.delete([blob.name, sha1(b"never stored")])
    blobs.delete([blob.name])
    assert not blobs.exists(blob.name)
    assert list(blobs.iter_names()) == []
    with pytest.raises(FileNotFoundError):
        b"".join(blobs.open_range(blob.name))


def test_a_discarded_staged_blob_leaves_nothing_and_a_left_one_is_found_stale(blobs: BlobStore) -> None:
    discarded = blobs.stage()
    discarded.write(b"x")
    discarded.discard()
    discarded.discard()
    assert blobs.stale_staged() == []
    left = blobs.stage()
    left.write(b"a crash left me")
    left.finish()  # closed but never promoted, as after a crash
    assert blobs.stale_staged() == [left.path]


def test_the_sweep_removes_stale_staged_files_and_unreferenced_blobs_only(blobs: BlobStore) -> None:
    kept, dropped = stored(blobs, b"kept"), stored(blobs, b"dropped")
    stale = blobs.stage()
    stale.write(b"stale")
    stale.finish()
    report = blob_port.sweep(blobs, {kept.name}, blob_rows=3)
    assert (report.temp_files, report.orphan_blobs, report.blob_rows) == (1, 1, 3)
    assert set(blobs.iter_names()) == {kept.name}
    assert not blobs.exists(dropped.name)


def test_local_path_is_the_blobs_bytes_or_none(blobs: BlobStore) -> None:
    blob = stored(blobs, DATA)
    path = blobs.local_path(blob.name)
    if isinstance(blobs, DiskBlobStore) and not isinstance(blobs, PathlessDiskBlobStore):
        assert path is not None and path.read_bytes() == DATA
    else:
        assert path is None


# --- downloads through BlobResponse, with and without a local path ----------------------------

MEMBER = b"".join(b"line %d of a member\n" % i for i in range(30_000))


def _bundle_with_member(blobs: BlobStore, compression: int) -> tuple[StoredBlob, ZipRange]:
    """A zip of one member, stored as a blob; where the member's data lies in it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("m.js", MEMBER)
    data = buffer.getvalue()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("m.js")
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    offset = info.header_offset + 30 + name_length + extra_length
    zip_range = ZipRange(offset=offset, compressed_size=info.compress_size, compression=compression, crc=info.CRC)
    return stored(blobs, data), zip_range


@pytest.mark.parametrize("what", ["blob", "stored member", "deflated member"])
@pytest.mark.parametrize("range_header", [None, "bytes=0-0", "bytes=1000-260999", "bytes=-7"])
async def test_a_download_is_the_same_bytes_with_or_without_a_local_path(
    blobs: BlobStore, what: str, range_header: str | None
) -> None:
    if what == "blob":
        blob, zip_range, content = stored(blobs, MEMBER), None, MEMBER
    else:
        compression = zipfile.ZIP_STORED if what == "stored member" else zipfile.ZIP_DEFLATED
        blob, zip_range = _bundle_with_member(blobs, compression)
        content = MEMBER

    async def handler(request: web.Request) -> web.StreamResponse:
        return BlobResponse(
            blobs,
            blob.name,
            size=len(content),
            sha1=sha1(content),
            content_type="text/plain",
            disposition='attachment; filename="m.js"',
            zip_range=zip_range,
        )

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        headers = {"Range": range_header} if range_header else {}
        resp = await client.get("/", headers=headers)
        body = await resp.read()
    if range_header is None:
        assert (resp.status, body == content) == (200, True)
        return
    spec = range_header.removeprefix("bytes=")
    first, _, last = spec.partition("-")
    expected = content[-int(last) :] if not first else content[int(first) : int(last) + 1]
    assert (resp.status, body == expected) == (206, True)
