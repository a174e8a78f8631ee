"""Built `SourceMapCache`s (symbolic, the `relserver[resolve]` extra) in a bounded in-memory
LRU keyed by the sha1s of the minified file and its map. Building is CPU-bound (about half a
second for a 15 MB map) and runs in a worker thread; concurrent requests for one key share
one build. A cache cannot be serialised from Python, so nothing is kept on disk."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

RESOLVE_EXTRA_INSTALL = "pip install 'relserver[resolve]'"


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


def _build(minified: bytes, sourcemap: bytes) -> BuiltCache:
    """Blocking: parse and index the pair (runs in a worker thread)."""
    try:
        module: Any = importlib.import_module("symbolic.sourcemapcache")
        exceptions: Any = importlib.import_module("symbolic.exceptions")
    except ImportError:
        raise ResolveUnavailable() from None
    try:
        built: BuiltCache = module.SourceMapCache.from_bytes(minified, sourcemap)
    except exceptions.SymbolicError as exc:
        raise MalformedSourcemap(str(exc) or type(exc).__name__) from None
    return built


@dataclass(slots=True)
class _Entry:
    cache: BuiltCache
    charge: int


class SourceMapCaches:
    """The LRU. Each entry is charged the bytes of its minified file and map (a built cache is
    smaller than its map, docs/benchmarks.md); the least recently used go once the total
    passes `max_bytes`. A pair larger than the whole budget is built and used, never kept."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._building: dict[tuple[str, str], asyncio.Future[BuiltCache]] = {}
        self.charged = 0
        self.builds = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, key: tuple[str, str]) -> BuiltCache | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.cache

    async def get(self, key: tuple[str, str], minified: bytes, sourcemap: bytes) -> tuple[BuiltCache, bool]:
        """The cache for (minified sha1, map sha1), and whether it was already built."""
        hit = self.cached(key)
        if hit is not None:
            return hit, True
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[BuiltCache] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            built = await asyncio.to_thread(_build, minified, sourcemap)
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
        self._keep(key, built, len(minified) + len(sourcemap))
        return built, False

    def _keep(self, key: tuple[str, str], built: BuiltCache, charge: int) -> None:
        if charge > self.max_bytes:
            return
        self._entries[key] = _Entry(built, charge)
        self.charged += charge
        while self.charged > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.charged -= evicted.charge
