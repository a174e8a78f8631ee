"""The S3 engine of the blob store: objects in an S3-compatible bucket, through obstore's
synchronous API (every method blocks and runs in a worker thread, like the disk engine's).

Staging stays on local disk (`disk.TempBlob` in the data dir's `tmp/`): hashing needs the
bytes before their name is known, and zipfile needs a seekable file. `promote` uploads the
staged file (multipart above `PART_SIZE`, with bounded parts in flight) and removes it; the
staged copy is never fsync'd, as the durable copy is the one S3 acknowledged.

Object keys are content-addressed: `<prefix>/<sha1[:2]>/<sha1[2:4]>/<sha1>`. That is correct
for the catalog relserver has today, which has one writer at a time (SQLite's writer lock,
or PostgreSQL's advisory lock held until the after-commit deletes have run): a blob is
deleted only under that lock, so no upload can start referencing a key while it is being
deleted. Many processes writing at once need what DESIGN D10 plans instead: random keys with
the sha1 as a unique catalog column, and deletion deferred to a collector after a grace period.

Configuration: `--blob-url s3://bucket/prefix` names the bucket and prefix; the endpoint,
region and credentials come from the standard AWS_* variables (`S3Settings.from_environ`).
obstore sends path-style requests unless AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from ...models import StoredBlob
from . import BlobStoreUnavailable, StagedBlob
from .disk import READ_PIECE_SIZE, TempBlob, stale_temp_files
from .s3_config import BlobUrl, S3Settings, describe

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

_SHA1_HEX = re.compile(r"[0-9a-f]{40}")

# Multipart uploads: parts of this size, this many in flight per upload, so one promote holds
# at most PART_SIZE * PART_CONCURRENCY bytes of a file in memory (S3 parts are at least 5 MiB,
# and SigV4 signs each part's bytes before they are sent).
PART_SIZE = 8 * 1024 * 1024
PART_CONCURRENCY = 2
# Staged blobs uploaded side by side by `promote_many` (a chunk POST carries up to 64).
PROMOTE_CONCURRENCY = 4
# `open_range` reads through ranged GETs of at most this many bytes each, so one request's
# lifetime is bounded by how fast the client takes a window, not by the blob's size.
READ_WINDOW = 16 * 1024 * 1024

# The start-up probe answers within seconds, whatever is wrong.
PROBE_CLIENT: ClientConfig = {"connect_timeout": timedelta(seconds=3), "timeout": timedelta(seconds=10)}
PROBE_RETRY: RetryConfig = {"max_retries": 1, "retry_timeout": timedelta(seconds=10)}


class S3BlobStore:
    """Blobs as objects under one bucket prefix. Implements `storage.blobs.BlobStore`."""

    def __init__(self, url: str, tmp_dir: Path, settings: S3Settings) -> None:
        self.url = BlobUrl.parse(url)
        self.tmp_dir = tmp_dir
        self.settings = settings
        try:
            self._store = self._make_store(settings.client_options(), None)
        except Exception as exc:  # obstore's configuration errors, e.g. an endpoint it cannot parse
            raise BlobStoreUnavailable(f"cannot use the blob store ({self}): {_reason(exc, self.url)}") from None

    def _make_store(self, client_options: ClientConfig, retry_config: RetryConfig | None) -> S3Store:
        return S3Store(
            self.url.bucket,
            prefix=self.url.prefix or None,
            config=self.settings.config(),
            client_options=client_options,
            retry_config=retry_config,
        )

    def __str__(self) -> str:
        return describe(str(self.url), self.settings)

    def prepare(self) -> None:
        """Create the staging dir, then list one key of the prefix with short timeouts: a
        wrong endpoint, refused credentials or a missing bucket raise BlobStoreUnavailable
        with a one-line reason."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        probe = self._make_store({**self.settings.client_options(), **PROBE_CLIENT}, PROBE_RETRY)
        try:
            next(iter(obstore.list(probe, chunk_size=1)), None)
        except Exception as exc:  # whatever the probe met becomes the one line start-up prints
            raise BlobStoreUnavailable(f"cannot use the blob store ({self}): {_reason(exc, self.url)}") from None

    @staticmethod
    def _key(sha1: str) -> str:
        if not _SHA1_HEX.fullmatch(sha1):
            raise ValueError(f"not a sha1: {sha1!r}")
        return f"{sha1[:2]}/{sha1[2:4]}/{sha1}"

    def local_path(self, sha1: str) -> Path | None:
        return None

    def exists(self, sha1: str) -> bool:
        try:
            obstore.head(self._store, self._key(sha1))
        except FileNotFoundError:
            return False
        return True

    def stage(self) -> TempBlob:
        # Not fsync'd: after a crash a staged file is a leftover either way, and the bytes
        # are durable once S3 has acknowledged them.
        return TempBlob(self.tmp_dir, fsync=False)

    def promote(self, staged: StagedBlob, blob: StoredBlob) -> None:
        """Upload a finished staged file under its sha1 (no upload when the object is there:
        same key, same bytes), then remove the staged file."""
        key = self._key(blob.sha1)
        if not self.exists(blob.sha1):
            # A path, not bytes: obstore reads the file a part at a time.
            obstore.put(self._store, key, staged.path, chunk_size=PART_SIZE, max_concurrency=PART_CONCURRENCY)
        staged.discard()

    def promote_many(self, items: list[tuple[StagedBlob, StoredBlob]]) -> None:
        """Several uploads side by side; every one has ended (done or failed) on return."""
        if len(items) <= 1:
            for staged, blob in items:
                self.promote(staged, blob)
            return
        with concurrent.futures.ThreadPoolExecutor(min(PROMOTE_CONCURRENCY, len(items))) as pool:
            futures = [pool.submit(self.promote, staged, blob) for staged, blob in items]
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()

    def put_small(self, data: bytes) -> StoredBlob:
        """Hash bytes held in memory and PUT them under their sha1, unless already stored."""
        blob = StoredBlob(sha1=hashlib.sha1(data).hexdigest(), size=len(data))  # noqa: S324 -- Sentry's file id
        if not self.exists(blob.sha1):
            obstore.put(self._store, self._key(blob.sha1), data, use_multipart=False)
        return blob

    def delete(self, sha1s: list[str]) -> None:
        """One DeleteObjects request per 1000 keys; a missing key is not an error on S3."""
        if sha1s:
            obstore.delete(self._store, [self._key(sha1) for sha1 in sha1s])

    def open_range(self, sha1: str, start: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The blob's bytes in pieces of at most READ_PIECE_SIZE, through ranged GETs of at
        most READ_WINDOW each; FileNotFoundError if absent."""
        key = self._key(sha1)
        end = None if count is None else start + count
        if end is not None and start >= end:
            # Nothing to read, but a missing blob is still missing.
            obstore.head(self._store, key)
            return
        while True:
            window_end = start + READ_WINDOW if end is None else min(end, start + READ_WINDOW)
            try:
                result = obstore.get(self._store, key, options={"range": (start, window_end)})
            except FileNotFoundError:
                raise
            except BaseError:
                # S3 refuses a range that starts at or past the end (416, and so every range
                # of an empty object): that is the end of the bytes, not an error.
                if start >= obstore.head(self._store, key)["size"]:
                    return
                raise
            size = result.meta["size"]
            yield from _pieces(result.stream(min_chunk_size=READ_PIECE_SIZE), READ_PIECE_SIZE)
            start = window_end
            if start >= size or (end is not None and start >= end):
                return

    def iter_sha1s(self) -> Iterator[str]:
        """Every blob under the prefix (a full listing; start-up and vacuum only). Only keys
        at a sha1's own `ab/cd/<sha1>` place count: anything else is not relserver's."""
        for batch in obstore.list(self._store, chunk_size=1000):
            for meta in batch:
                name = meta["path"].rpartition("/")[2]
                if _SHA1_HEX.fullmatch(name) and meta["path"] == self._key(name):
                    yield name

    def stale_staged(self) -> list[Path]:
        return stale_temp_files(self.tmp_dir)


def _pieces(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """The same bytes re-cut into pieces of exactly `size` (the last may be shorter)."""
    pending = b""
    for chunk in chunks:
        pending = pending + bytes(chunk) if pending else bytes(chunk)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _reason(exc: BaseException, url: BlobUrl) -> str:
    """One line for what the probe met (obstore's messages are multi-line debug dumps)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
        return f"no bucket named {url.bucket!r}"
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)) or any(
        code in text for code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403 Forbidden")
    ):
        return "the credentials were refused (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    if any(words in text for words in ("Connection refused", "error sending request", "dns error", "timed out")):
        return "cannot reach the endpoint (check AWS_ENDPOINT_URL)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first[:200]
