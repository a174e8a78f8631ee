"""The S3 engine of the blob store: objects in an S3-compatible bucket, through obstore's
synchronous API (every method blocks and runs in a worker thread, like the disk engine's).

Staging stays on local disk (`disk.TempBlob` in the data dir's `tmp/`): hashing needs the
bytes before their name is known, and zipfile needs a seekable file. `promote` uploads the
staged file (multipart above `PART_SIZE`, with bounded parts in flight) and removes it; the
staged copy is never fsync'd, as the durable copy is the one S3 acknowledged.

Object keys are random (DESIGN D10): every stored blob is a new object
`<prefix>/<name[:2]>/<name[2:4]>/<name>`, its name a uuid4 in hex, returned as
`StoredBlob.key`, and the catalog's blob row (unique by sha1) says which object holds a sha1's
bytes. So no process ever overwrites or deletes an object another one may be about to
reference: two processes storing the same bytes at once write two objects, one row wins, and
the other object is its writer's to delete. Objects written before random keys are named by
their sha1 at the same `ab/cd/` place and keep being read (their rows have no key).

Failures at run time (a bucket removed, credentials revoked, the endpoint down) raise
`BlobStoreUnavailable` with one line, which the API answers with a Sentry-shaped 503.

Configuration: `--blob-url s3://bucket/prefix` names the bucket and prefix; the endpoint,
region and credentials come from the standard AWS_* variables (`S3Settings.from_environ`).
obstore sends path-style requests unless AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from ...models import StoredBlob
from . import BlobStoreUnavailable, StagedBlob
from .disk import READ_PIECE_SIZE, TempBlob, stale_temp_files
from .s3_config import BlobUrl, S3Settings, describe

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

# A blob's name: a random uuid4 in hex, or (objects written before random keys) its sha1.
_NAME = re.compile(r"[0-9a-f]{32}|[0-9a-f]{40}")

P = ParamSpec("P")
R = TypeVar("R")

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
# Requests while serving retry a few times within seconds: obstore's default keeps retrying
# for up to 3 minutes, which would hold a request that long when the store is down. The client
# (sentry-cli, a bundler plugin) retries a failed request itself.
RUNTIME_RETRY: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=10)}


def _failing_as_unavailable(
    method: Callable[Concatenate[S3BlobStore, P], R],
) -> Callable[Concatenate[S3BlobStore, P], R]:
    """Any failure of the store but a missing object becomes BlobStoreUnavailable, one line."""

    @functools.wraps(method)
    def wrapper(self: S3BlobStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return _unavailable_on_failure(self, lambda: method(self, *args, **kwargs))

    return wrapper


class S3BlobStore:
    """Blobs as objects under one bucket prefix, each under a random name. Implements
    `storage.blobs.BlobStore` (a keyed store)."""

    content_addressed = False

    def __init__(self, url: str, tmp_dir: Path, settings: S3Settings) -> None:
        self.url = BlobUrl.parse(url)
        self.tmp_dir = tmp_dir
        self.settings = settings
        try:
            self._store = self._make_store(settings.client_options(), RUNTIME_RETRY)
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
    def _key(name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a blob name: {name!r}")
        return f"{name[:2]}/{name[2:4]}/{name}"

    def local_path(self, name: str) -> Path | None:
        return None

    @_failing_as_unavailable
    def presigned_url(self, name: str, expires: timedelta) -> str | None:
        """SigV4 in the query string (no request is made): the URL alone is the credential,
        so whoever follows it must not send an Authorization header as well (S3 refuses two)."""
        return obstore.sign(self._store, "GET", self._key(name), expires)

    @_failing_as_unavailable
    def exists(self, name: str) -> bool:
        try:
            obstore.head(self._store, self._key(name))
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise
            return False
        return True

    def stage(self) -> TempBlob:
        # Not fsync'd: after a crash a staged file is a leftover either way, and the bytes
        # are durable once S3 has acknowledged them.
        return TempBlob(self.tmp_dir, fsync=False)

    @_failing_as_unavailable
    def promote(self, staged: StagedBlob, blob: StoredBlob) -> StoredBlob:
        """Upload a finished staged file as a new object, then remove the staged file."""
        name = uuid.uuid4().hex
        # A path, not bytes: obstore reads the file a part at a time.
        obstore.put(self._store, self._key(name), staged.path, chunk_size=PART_SIZE, max_concurrency=PART_CONCURRENCY)
        staged.discard()
        return dataclasses.replace(blob, key=name)

    def promote_many(self, items: list[tuple[StagedBlob, StoredBlob]]) -> list[StoredBlob]:
        """Several uploads side by side; every one has ended (done or failed) on return. When
        one fails, the objects the others wrote are deleted (best effort: the collector's
        hunt for leftovers finds any that stay) before its error is raised."""
        if len(items) <= 1:
            return [self.promote(staged, blob) for staged, blob in items]
        with concurrent.futures.ThreadPoolExecutor(min(PROMOTE_CONCURRENCY, len(items))) as pool:
            futures = [pool.submit(self.promote, staged, blob) for staged, blob in items]
            concurrent.futures.wait(futures)
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is None:
            return [future.result() for future in futures]
        written = [f.result().name for f in futures if f.exception() is None]
        with contextlib.suppress(BlobStoreUnavailable):
            self.delete(written)
        raise failed

    @_failing_as_unavailable
    def put_small(self, data: bytes) -> StoredBlob:
        """Hash bytes held in memory and PUT them as a new object."""
        name = uuid.uuid4().hex
        obstore.put(self._store, self._key(name), data, use_multipart=False)
        return StoredBlob(sha1=hashlib.sha1(data).hexdigest(), size=len(data), key=name)  # noqa: S324 -- Sentry's file id

    @_failing_as_unavailable
    def delete(self, names: list[str]) -> None:
        """One DeleteObjects request per 1000 keys; a missing key is not an error on S3."""
        if names:
            obstore.delete(self._store, [self._key(name) for name in names])

    @_failing_as_unavailable
    def open_range(self, name: str, start: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The blob's bytes in pieces of at most READ_PIECE_SIZE, through ranged GETs of at
        most READ_WINDOW each; FileNotFoundError if absent. The first GET is made before this
        returns, so a store that fails fails here, before any byte is promised."""
        key = self._key(name)
        end = None if count is None else start + count
        if end is not None and start >= end:
            # Nothing to read, but a missing blob is still missing.
            obstore.head(self._store, key)
            return iter(())
        first = self._window(key, start, end)
        if first is None:
            return iter(())
        return self._windows(key, start, end, first)

    def _window(self, key: str, start: int, end: int | None) -> obstore.GetResult | None:
        window_end = start + READ_WINDOW if end is None else min(end, start + READ_WINDOW)
        try:
            return obstore.get(self._store, key, options={"range": (start, window_end)})
        except FileNotFoundError:
            raise
        except BaseError:
            # S3 refuses a range that starts at or past the end (416, and so every range
            # of an empty object): that is the end of the bytes, not an error.
            if start >= obstore.head(self._store, key)["size"]:
                return None
            raise

    def _windows(self, key: str, start: int, end: int | None, result: obstore.GetResult | None) -> Iterator[bytes]:
        while result is not None:
            window_end = start + READ_WINDOW if end is None else min(end, start + READ_WINDOW)
            size = result.meta["size"]
            yield from _pieces(result.stream(min_chunk_size=READ_PIECE_SIZE), READ_PIECE_SIZE)
            start = window_end
            if start >= size or (end is not None and start >= end):
                return
            result = _unavailable_on_failure(self, functools.partial(self._window, key, start, end))

    def iter_names(self, older_than: datetime | None = None) -> Iterator[str]:
        """Every blob under the prefix (last written before `older_than`, when given). Only
        keys at a name's own `ab/cd/<name>` place count: anything else is not relserver's."""
        listing = iter(obstore.list(self._store, chunk_size=1000))
        while True:
            batch = _unavailable_on_failure(self, lambda: next(listing, None))
            if batch is None:
                return
            for meta in batch:
                name = meta["path"].rpartition("/")[2]
                ours = _NAME.fullmatch(name) and meta["path"] == self._key(name)
                if ours and (older_than is None or meta["last_modified"] < older_than):
                    yield name

    def stale_staged(self) -> list[Path]:
        return stale_temp_files(self.tmp_dir)


def _unavailable_on_failure(store: S3BlobStore, call: Callable[[], R]) -> R:
    try:
        return call()
    except BlobStoreUnavailable:
        raise
    except FileNotFoundError as exc:
        if "NoSuchBucket" in str(exc):
            raise BlobStoreUnavailable(f"the blob store ({store}) failed: {_reason(exc, store.url)}") from None
        raise
    except (BaseError, OSError) as exc:
        raise BlobStoreUnavailable(f"the blob store ({store}) failed: {_reason(exc, store.url)}") from None


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
