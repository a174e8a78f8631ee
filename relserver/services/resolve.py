"""Resolve: what Sentry's processing would make of JavaScript frames, over exactly what was
uploaded (DESIGN D12), explained step by step.

Public interface (the HTTP endpoint, `relserver resolve`, the fixture and the web page use it):

    parse_request(body) -> ResolveRequest          # {"release", "dist", "frames"|"event"|"stacktrace"}
    parse_frames(raw) / parse_event(raw) / parse_stacktrace(text) / parse_frame_argument(text)
    resolve_available() -> bool                    # False without the `relserver[resolve]` extra
    async resolve(backend, org, project, release, dist, frames) -> ResolveResult

Parsers raise `ResolveInputError` (a 400); `resolve` raises `ResolveUnavailable` without symbolic
(a 501 naming RESOLVE_EXTRA_INSTALL). Frames are caller-first, results follow their order.

The lookup follows symbolicator-js (`lookup.rs` `get_file`, `fetch_minified_and_sourcemap`;
`symbolication.rs` `symbolicate_js_frame`) over the artifact lookup (`services.lookup`), which is
Sentry's artifact-lookup endpoint. It never fetches from the web: where Sentry would scrape, the
frame says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

from ..config import MiB
from ..models import Organization, Project, UploadedName, ZipRange
from ..sentry import sourcemaps as sm
from ..sentry.stacktraces import (
    Frame,
    ParsedEvent,
    ResolveInputError,
    parse_event,
    parse_frame_argument,
    parse_frames,
    parse_stacktrace,
)
from ..storage.blobs import BlobStore
from .context import Backend
from .lookup import artifact_lookup
from .resolve_hints import missing_file_hints, position_hints
from .resolve_report import (
    INVALID_LOCATION,
    MALFORMED_SOURCEMAP,
    MISSING_SOURCE,
    MISSING_SOURCE_CONTENT,
    MISSING_SOURCEMAP,
    Artifact,
    FoundBy,
    FrameResult,
    Hint,
    ResolveResult,
    Step,
)
from .sourcemap_cache import (
    RESOLVE_EXTRA_INSTALL,
    MalformedSourcemap,
    ResolveUnavailable,
    resolve_available,
)

__all__ = [
    "RESOLVE_EXTRA_INSTALL",
    "Artifact",
    "FoundBy",
    "Frame",
    "FrameResult",
    "Hint",
    "ParsedEvent",
    "ResolveInputError",
    "ResolveRequest",
    "ResolveResult",
    "ResolveUnavailable",
    "Step",
    "parse_event",
    "parse_frame_argument",
    "parse_frames",
    "parse_request",
    "parse_stacktrace",
    "resolve",
    "resolve_available",
]

# Lines of context on each side (symbolicator's get_context_lines default, source_context.rs).
CONTEXT_LINES = 5
# Our bound on one minified file, map or original read into memory for resolve; symbolicator
# bounds what a request retains too (its sources budget in lookup.rs). 15 MB maps are common.
MAX_RESOLVE_FILE_SIZE = 256 * MiB
# Manifest `type`s (symbolic-debuginfo sourcebundle SourceFileType).
MINIFIED_SOURCE = "minified_source"
SOURCE_MAP = "source_map"
SOURCE = "source"


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """A parsed resolve body: the frames (caller-first) and the release and dist they ran in."""

    frames: list[Frame]
    release: str | None
    dist: str | None


def _optional_name(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ResolveInputError(f"{key} must be a string or null")
    return value


def parse_request(body: Any) -> ResolveRequest:
    """`{"release", "dist", "frames" | "event" | "stacktrace"}`; exactly one of the three. An
    event's own release and dist apply unless the body names them."""
    if not isinstance(body, dict):
        raise ResolveInputError(
            'the body must be a JSON object: {"release", "dist", "frames" | "event" | "stacktrace"}'
        )
    given = [k for k in ("frames", "event", "stacktrace") if body.get(k) is not None]
    if len(given) != 1:
        raise ResolveInputError(
            "give exactly one of frames, event or stacktrace" + (f" (got {', '.join(given)})" if given else "")
        )
    release, dist = _optional_name(body, "release"), _optional_name(body, "dist")
    if given[0] == "event":
        event = parse_event(body["event"])
        return ResolveRequest(event.frames, release or event.release, dist or event.dist)
    if given[0] == "stacktrace":
        return ResolveRequest(parse_stacktrace(body["stacktrace"]), release, dist)
    return ResolveRequest(parse_frames(body["frames"]), release, dist)


@dataclass(slots=True)
class _File:
    """A file found for a frame: its bytes and where they came from."""

    artifact: Artifact
    resolved_with: str
    contents: bytes
    sha1: str
    headers: dict[str, str]
    # The minified file's own debug id: a release file's `//# debugId=` comment (lookup.rs
    # try_fetch_file_from_artifacts); a bundle member's is not read (CachedFile::from_descriptor).
    debug_id: str | None


def _read_bytes(store: BlobStore, blob_sha1: str, at: ZipRange | None, size: int) -> bytes:
    """Blocking: the whole content of a blob, or of a member at `at` inside a bundle's zip."""
    if at is None:
        return b"".join(store.open_range(blob_sha1, 0, None))
    raw = b"".join(store.open_range(blob_sha1, at.offset, at.compressed_size))
    if at.compression == 0:
        return raw
    if at.compression == zlib.DEFLATED:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, size)
    raise OSError(f"zip compression {at.compression} is stored extracted, not in place")


class _Session:
    """One request's lookup state, as symbolicator keeps it per event: the bundles and
    individual release files the artifact lookup returned so far, and the queries made."""

    def __init__(self, backend: Backend, org: Organization, project: Project, release: str | None, dist: str | None):
        self.backend, self.org, self.project = backend, org, project
        self.release, self.dist = release, dist
        self.bundles: dict[int, str] = {}
        self.bundle_ids: dict[int, str] = {}
        self.files: dict[str, tuple[int, str]] = {}
        self.file_headers: dict[int, dict[str, str]] = {}
        self.queried: set[tuple[str | None, str | None]] = set()
        self.names: dict[str, list[UploadedName]] = {}

    # --- the artifact lookup ----------------------------------------------------------------

    async def query(self, debug_id: str | None, abs_path: str | None, result: FrameResult) -> bool:
        """Ask the artifact lookup for a debug id and a file stem; True when it brought new
        bundles or files (query_sentry_for_files, lookup.rs)."""
        stem = sm.file_stem(abs_path) if abs_path else None
        if not debug_id and (not stem or not self.release):
            return False
        if (debug_id, stem) in self.queried:
            return False
        self.queried.add((debug_id, stem))
        hits = await artifact_lookup(
            self.backend, self.org, self.project, debug_id=debug_id, url=stem, version=self.release, dist=self.dist
        )
        new = 0
        for hit in hits:
            if hit.kind == "artifact_bundle" and hit.pk not in self.bundles:
                self.bundles[hit.pk] = hit.resolved_with
                new += 1
            elif hit.kind == "release_file" and hit.abs_path is not None and hit.abs_path not in self.files:
                self.files[hit.abs_path] = (hit.pk, hit.resolved_with)
                self.file_headers[hit.pk] = hit.headers or {}
                new += 1
        asked = ", ".join(
            part
            for part in (
                f"debug_id={debug_id}" if debug_id else "",
                f"release={self.release!r}" if self.release and stem else "",
                f"dist={self.dist!r}" if self.release and stem else "",
                f"url={stem!r}" if stem and self.release else "",
            )
            if part
        )
        kinds = sorted({f"{h.kind} ({h.resolved_with})" for h in hits})
        result.step(
            "artifact lookup", bool(hits), f"{asked} → {len(hits)} hit(s)" + (f": {', '.join(kinds)}" if kinds else "")
        )
        return new > 0

    def _ordered_bundles(self) -> list[int]:
        # ArtifactBundles is a BTreeMap by download URI, iterated in reverse (lookup.rs).
        return sorted(self.bundles, key=lambda pk: f"artifact_bundle/{pk}", reverse=True)

    async def _bundle_id(self, pk: int) -> str:
        if pk not in self.bundle_ids:
            async with self.backend.catalog.read() as tx:
                bundle = await tx.bundles.by_pk(pk)
            self.bundle_ids[pk] = bundle.bundle_id if bundle else str(pk)
        return self.bundle_ids[pk]

    # --- reading what was found -------------------------------------------------------------

    async def _load(self, blob_sha1: str, at: ZipRange | None, size: int) -> bytes:
        if size > MAX_RESOLVE_FILE_SIZE:
            raise OSError(f"{size} bytes is more than resolve reads ({MAX_RESOLVE_FILE_SIZE})")
        return await asyncio.to_thread(_read_bytes, self.backend.blobstore, blob_sha1, at, size)

    async def _from_bundles(
        self, result: FrameResult, *, debug_id: str | None, urls: list[str], file_type: str
    ) -> _File | None:
        async with self.backend.catalog.read() as tx:
            found = None
            if debug_id:
                for pk in self._ordered_bundles():
                    member = await tx.members.by_debug_id(pk, debug_id, file_type)
                    if member is not None:
                        found = (pk, member, "debug id", "debug-id")
                        break
            else:
                for url in urls:
                    holders = [pk for pk in self._ordered_bundles() if await tx.members.by_url(pk, url)]
                    if holders:
                        member = await tx.members.by_url(holders[0], url)
                        assert member is not None
                        found = (holders[0], member, url, self.bundles[holders[0]])
                        if len(holders) > 1:
                            await self._several_bundles_hint(result, url, holders)
                        break
        if found is None:
            return None
        pk, member, matched, resolved_with = found
        artifact = Artifact("artifact_bundle", await self._bundle_id(pk), member.url, matched)
        contents = await self._load(member.blob_sha1, member.zip_range, member.size)
        return _File(artifact, resolved_with, contents, member.sha1, member.headers, None)

    async def _several_bundles_hint(self, result: FrameResult, url: str, holders: list[int]) -> None:
        """More than one bundle of the lookup holds the name: Sentry takes the first in reverse
        order of its download URI as a string, not the newest (symbolicator#1198)."""
        ids = [await self._bundle_id(pk) for pk in holders]
        result.hint(
            "several_bundles",
            f"{len(holders)} bundles hold {url}; Sentry takes bundle {ids[0]} (the last by its download "
            f"URI artifact_bundle/{holders[0]}, compared as text), not necessarily the newest; the others: "
            + ", ".join(ids[1:]),
        )

    async def _from_release_files(self, urls: list[str]) -> _File | None:
        for url in urls:
            if url in self.files:
                pk, resolved_with = self.files[url]
                async with self.backend.catalog.read() as tx:
                    f = await tx.files.get_in_project(self.project.id, pk)
                if f is None:
                    continue
                contents = await self._load(f.blob_sha1, f.zip_range, f.size)
                text = contents.decode("utf-8", "replace")
                artifact = Artifact("release_file", str(f.id), f.name, url)
                return _File(artifact, resolved_with, contents, f.sha1, f.headers, sm.discover_debug_id(text))
        return None

    async def get_file(
        self, result: FrameResult, what: str, abs_path: str | None, debug_id: str | None, file_type: str
    ) -> _File | None:
        """A file by debug id first, else by URL candidates, asking the artifact lookup when
        what is known does not have it (get_file, try_get_file_with(out)_debug_id, lookup.rs)."""
        urls = sm.candidate_urls(abs_path) if abs_path else []

        async def by_id() -> _File | None:
            return await self._from_bundles(result, debug_id=debug_id, urls=[], file_type=file_type)

        async def by_path() -> _File | None:
            return await self._from_bundles(result, debug_id=None, urls=urls, file_type=file_type) if urls else None

        async def individual() -> _File | None:
            return await self._from_release_files(urls) if urls else None

        first = by_id if debug_id else by_path
        found = await first() or await individual()
        if found is None and await self.query(debug_id, abs_path, result):
            found = await first() or await individual()
        if found is None and debug_id:
            result.step(f"{what} by debug id", False, f"no uploaded {file_type} carries debug id {debug_id}")
            found = await by_path()
        if found is not None:
            result.step(what, True, found.artifact.describe())
        elif urls:
            result.step(what, False, "no upload named " + " or ".join(urls))
        return found

    async def uploaded_names(self, needle: str) -> list[UploadedName]:
        if needle not in self.names:
            async with self.backend.catalog.read() as tx:
                names = await tx.members.names_in_project(self.org.id, self.project.id, needle, 50)
                names += await tx.files.names_in_project(self.project.id, needle, 50)
            self.names[needle] = names
        return self.names[needle]


async def _hints_for_missing(session: _Session, result: FrameResult, abs_path: str) -> None:
    needle = sm.strip_hostname(abs_path).split("?", 1)[0].rsplit("/", 1)[-1]
    if needle:
        names = await session.uploaded_names(needle)
        for kind, detail in missing_file_hints(abs_path, names, session.release, session.dist):
            result.hint(kind, detail)
    if abs_path.startswith(("http://", "https://")):
        result.hint(
            "scraping",
            f"Sentry would try to download {abs_path} from the web (if scraping is allowed); relserver never does",
        )


async def _resolve_frame(session: _Session, result: FrameResult, callsite: str | None) -> str | None:
    """One frame (symbolicate_js_frame, symbolication.rs); the token name for the next frame."""
    frame = result.frame
    abs_path = frame.abs_path.removeprefix("async ")
    if frame.lineno is None or frame.lineno < 1:
        result.error = INVALID_LOCATION
        result.step("position", False, f"line {frame.lineno} is not a line (Sentry looks nothing up below line 1)")
        return None
    col = frame.colno or 0
    debug_id = frame.debug_id
    result.step("debug id", None, f"the frame's debug id is {debug_id}" if debug_id else "the frame has no debug id")
    minified = await session.get_file(result, "minified file", abs_path, debug_id, MINIFIED_SOURCE)
    if minified is None:
        result.error = MISSING_SOURCE
        await _hints_for_missing(session, result, abs_path)
        if not debug_id:
            result.hint(
                "no_debug_id",
                "the frame carries no debug id: inject them (sentry-cli sourcemaps inject) and send debug_meta",
            )
        return None
    text = minified.contents.decode("utf-8", "replace")
    for kind, detail in position_hints(text, frame.lineno, col):
        result.hint(kind, detail)
    reference, origin = sm.sourcemap_reference(minified.headers, text)
    for comment in sm.ignored_sourcemap_comments(text):
        result.hint(
            "ignored_sourcemap_comment",
            f"Sentry ignores {comment!r}: it reads only `//# sourceMappingURL=…` (one space after #)",
        )
    debug_id = debug_id or minified.debug_id
    if reference is None and not debug_id:
        result.step(
            "source map reference",
            False,
            "no Sourcemap header and no sourceMappingURL comment, and no debug id: Sentry leaves this frame as it is",
        )
        return None
    embedded = reference is not None and reference.startswith("data:")
    sm_url = None if reference is None or embedded else sm.join_paths(abs_path, reference)
    if reference is None:
        result.step("source map reference", None, "none; looking the map up by debug id")
    elif embedded:
        result.step("source map reference", True, f"embedded data: URL ({origin})")
    else:
        result.step("source map reference", True, f"{reference!r} ({origin}) → {sm_url}")
    result.sourcemap = sm_url or abs_path
    sourcemap: _File | None
    if embedded:
        assert reference is not None
        try:
            data = sm.decode_data_url(reference)
        except sm.DataUrlError as exc:
            result.error = MALFORMED_SOURCEMAP
            result.step("source map", False, f"the embedded map cannot be decoded: {exc}")
            return None
        sourcemap = _File(
            Artifact("embedded", "", "data:", "sourceMappingURL"),
            minified.resolved_with,
            data,
            hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            {},
            None,
        )
    else:
        sourcemap = await session.get_file(result, "source map", sm_url, debug_id, SOURCE_MAP)
    if sourcemap is None:
        result.error = MISSING_SOURCEMAP
        if sm_url:
            await _hints_for_missing(session, result, sm_url)
        return None
    map_debug_id = sm.embedded_debug_id(sourcemap.contents)
    file_debug_id = debug_id or (minified.debug_id)
    if map_debug_id and file_debug_id and map_debug_id != file_debug_id:
        result.hint(
            "debug_id_mismatch",
            f"the map's debug id is {map_debug_id}, the minified file's {file_debug_id}: they are not one build's pair",
        )
    try:
        cache, was_cached = await session.backend.sourcemaps.get(
            (minified.sha1, sourcemap.sha1), minified.contents, sourcemap.contents
        )
    except MalformedSourcemap as exc:
        result.error = MALFORMED_SOURCEMAP
        result.step("source map", False, f"symbolic cannot read the pair: {exc}")
        return None
    result.found_by = FoundBy(sourcemap.resolved_with, minified.artifact, sourcemap.artifact)
    token = cache.lookup(frame.lineno, max(col, 1), CONTEXT_LINES)
    if token is None:
        result.error = INVALID_LOCATION
        result.step("position", False, f"no mapping at or before line {frame.lineno} column {col} on that line")
        return None
    result.resolved = True
    scope = token.function_name
    if scope is None or scope == "<unknown>":
        scope = frame.function or "<unknown>"
    result.function = sm.fold_function_name(sm.function_for_token(frame.function, scope, callsite))
    base = sm_url or abs_path
    if token.src:
        filename = token.src
        result.abs_path = sm.join_paths(base, filename)
        if filename.startswith("webpack:"):
            filename = sm.fixup_webpack_filename(filename)
            result.module = sm.generate_module(filename)
        if result.module is None and result.abs_path.startswith(("http:", "https:", "webpack:", "app:")):
            result.module = sm.generate_module(result.abs_path)
        result.filename = filename
    result.lineno, result.colno = token.line, token.col
    result.step(
        "position", True, f"{result.filename}:{token.line}:{token.col}" + (" (cache built)" if not was_cached else "")
    )
    if token.context_line is not None:
        result.context_line = token.context_line.rstrip("\r\n")
        result.pre_context = [line.rstrip("\r\n") for line in token.pre_context]
        result.post_context = [line.rstrip("\r\n") for line in token.post_context]
    elif token.src:
        await _context_from_original(session, result, sm.join_paths(base, token.src))
    return token.name


async def _context_from_original(session: _Session, result: FrameResult, source_url: str) -> None:
    """No `sourcesContent`: the original file as an artifact (symbolication.rs)."""
    found = await session.get_file(result, "original source", source_url, None, SOURCE)
    if found is None:
        result.error = MISSING_SOURCE_CONTENT
        result.hint(
            "missing_source_content",
            f"the map has no sourcesContent for {result.filename} and {source_url} was not uploaded",
        )
        return
    lines = found.contents.decode("utf-8", "replace").splitlines()
    index = (result.lineno or 1) - 1
    if 0 <= index < len(lines):
        result.context_line = lines[index]
        result.pre_context = lines[max(0, index - CONTEXT_LINES) : index]
        result.post_context = lines[index + 1 : index + 1 + CONTEXT_LINES]


async def resolve(
    backend: Backend,
    org: Organization,
    project: Project,
    release: str | None,
    dist: str | None,
    frames: list[Frame],
) -> ResolveResult:
    """Resolve frames (caller-first) as Sentry would for an event of this release and dist."""
    if not resolve_available():
        raise ResolveUnavailable()
    session = _Session(backend, org, project, release or None, dist or None)
    results = [FrameResult(f) for f in frames]
    callsite: str | None = None
    stack: int | None = None
    for result in results:
        if result.frame.stack != stack:
            stack, callsite = result.frame.stack, None
        # The callsite name passes only from a resolved frame to the next (symbolication.rs).
        callsite = await _resolve_frame(session, result, callsite)
    return ResolveResult(session.release, session.dist, results)
