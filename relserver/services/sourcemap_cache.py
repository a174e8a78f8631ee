"""Built `SourceMapCache`s (symbolic, the `relserver[resolve]` extra) in a bounded in-memory
LRU keyed by the sha1s of the minified file and its map. Building is CPU-bound (about half a
second for a 15 MB map) and runs in a worker thread; concurrent requests for one key share
one build. A cache cannot be serialised from Python, so nothing is kept on disk."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.util
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..sentry.sourcemaps import embedded_debug_id

RESOLVE_EXTRA_INSTALL = "pip install 'relserver[resolve]'"

# Caches are built one at a time, on a thread of their own: a build peaks at several times
# its map's size (about 90 MB for a 15 MB map, docs/benchmarks.md) and the allocator keeps a
# thread's peak for reuse, so builds spread over the default executor's threads would each
# keep one; one thread keeps one. It also leaves the other core to the event loop.
BUILD_THREADS = 1


class ResolveUnavailable(RuntimeError):
    """symbolic is not installed; resolve answers 501 with the install command."""

    def __init__(self) -> None:
        super().__init__(
            f"resolving frames needs symbolic's SourceMapCache, Sentry's own engine: {RESOLVE_EXTRA_INSTALL}"
        )


class MalformedSourcemap(ValueError):
    """symbolic refused the minified file and map pair (Sentry's malformed_sourcemap)."""


class Token(Protocol):
    """What `SourceMapCache.lookup` answers (symbolic.sourcemapcache.SourceMapCacheToken)."""

    line: int
    col: int
    src: str | None
    name: str | None
    function_name: str | None
    context_line: str | None
    pre_context: list[str]
    post_context: list[str]


class BuiltCache(Protocol):
    def lookup(self, line: int, col: int, context_lines: int) -> Token | None: ...


def resolve_available() -> bool:
    """Whether the `resolve` extra (symbolic) is installed."""
    return importlib.util.find_spec("symbolic") is not None


@dataclass(frozen=True, slots=True)
class Built:
    """A built cache, and the map's own debug id (read at build time, so a cached resolve
    never reads the map again)."""

    cache: BuiltCache
    map_debug_id: str | None


def _build(minified: bytes, sourcemap: bytes) -> Built:
    """Blocking: parse and index the pair (runs on the build thread)."""
    try:
        module: Any = importlib.import_module("symbolic.sourcemapcache")
        exceptions: Any = importlib.import_module("symbolic.exceptions")
    except ImportError:
        raise ResolveUnavailable() from None
    try:
        built: BuiltCache = module.SourceMapCache.from_bytes(minified, sourcemap)
    except exceptions.SymbolicError as exc:
        raise MalformedSourcemap(str(exc) or type(exc).__name__) from None
    return Built(built, embedded_debug_id(sourcemap))


@dataclass(slots=True)
class _Entry:
    built: Built
    charge: int
    # What the caller worked out from the minified file's text (its map reference, …), kept
    # with the entry so a cached resolve need not read the minified file again.
    minified_info: object


class SourceMapCaches:
    """The LRU. Each entry is charged the bytes of its minified file and map (a built cache is
    smaller than its map, docs/benchmarks.md); the least recently used go once the total
    passes `max_bytes`. A pair larger than the whole budget is built and used, never kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        # minified sha1 → the key of an entry holding that file's info.
        self._by_minified: dict[str, tuple[str, str]] = {}
        self._building: dict[tuple[str, str], asyncio.Future[Built]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.charged = 0
        self.builds = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key: tuple[str, str]) -> Built | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.built

    def minified_info(self, minified_sha1: str) -> object | None:
        """The info kept with an entry built from this minified file, if one is cached."""
        key = self._by_minified.get(minified_sha1)
        entry = self._entries.get(key) if key is not None else None
        return entry.minified_info if entry is not None else None

    async def get(
        self,
        key: tuple[str, str],
        load: Callable[[], Awaitable[tuple[bytes, bytes]]],
        minified_info: object = None,
    ) -> tuple[Built, bool]:
        """The cache for (minified sha1, map sha1), and whether it was already built; `load`
        reads the two files, and runs only when a build is needed."""
        hit = self.cached(key)
        if hit is not None:
            return hit, True
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[Built] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            minified, sourcemap = await load()
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(BUILD_THREADS, "relserver-sourcemaps")
            built = await asyncio.get_running_loop().run_in_executor(self._executor, _build, minified, sourcemap)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._building.pop(key, None)
        future.set_result(built)
        self.builds += 1
        self._keep(key, _Entry(built, len(minified) + len(sourcemap), minified_info))
        return built, False

    def _keep(self, key: tuple[str, str], entry: _Entry) -> None:
        if entry.charge > self.max_bytes:
            return
        self._entries[key] = entry
        self._by_minified[key[0]] = key
        self.charged += entry.charge
        while self.charged > self.max_bytes:
            old_key, evicted = self._entries.popitem(last=False)
            self.charged -= evicted.charge
            if self._by_minified.get(old_key[0]) == old_key:
                del self._by_minified[old_key[0]]

    def close(self) -> None:
        """Drop the caches and stop the build thread (the app's cleanup)."""
        self._entries.clear()
        self._by_minified.clear()
        self.charged = 0
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
