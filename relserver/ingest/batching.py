"""Streaming a part into a sink in a worker thread: batches of at least `WRITE_BATCH_SIZE` per
hop (DESIGN invariant 4), one batch written while the next is read, and `LazySink`, which
creates its file only when a part outgrows one batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from aiohttp import BodyPartReader

from ..models import StoredBlob

# Bytes asked of the multipart reader per read; batches for the worker thread are lists of
# these. 256 KiB (one default batch) took about a tenth less CPU per GiB than 64 KiB reads,
# in scripts/bench.py's large upload.
READ_CHUNK_SIZE = 256 * 1024


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
