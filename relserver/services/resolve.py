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
from dataclasses import dataclass
from typing import Any

from ..models import Organization, Project
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
from .context import Backend
from .resolve_hints import missing_file_hints, position_hints
from .resolve_lookup import File, RequestLookup
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


async def _hints_for_missing(lookup: RequestLookup, result: FrameResult, abs_path: str) -> None:
    needle = sm.strip_hostname(abs_path).split("?", 1)[0].rsplit("/", 1)[-1]
    if needle:
        names = await lookup.uploaded_names(needle)
        for kind, detail in missing_file_hints(abs_path, names, lookup.release, lookup.dist):
            result.hint(kind, detail)
    if abs_path.startswith(("http://", "https://")):
        result.hint(
            "scraping",
            f"Sentry would try to download {abs_path} from the web (if scraping is allowed); relserver never does",
        )


async def _resolve_frame(lookup: RequestLookup, result: FrameResult, callsite: str | None) -> str | None:
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
    minified = await lookup.get_file(result, "minified file", abs_path, debug_id, MINIFIED_SOURCE)
    if minified is None:
        result.error = MISSING_SOURCE
        await _hints_for_missing(lookup, result, abs_path)
        if not debug_id:
            result.hint(
                "no_debug_id",
                "the frame carries no debug id: inject them (sentry-cli sourcemaps inject) and send debug_meta",
            )
        return None
    try:
        text = await lookup.minified_text(minified)
    except OSError as exc:
        result.error = MISSING_SOURCE
        result.step("minified file", False, f"cannot be read: {exc}")
        return None
    for kind, detail in position_hints(text.line_lengths, frame.lineno, col):
        result.hint(kind, detail)
    reference, origin = text.reference, text.origin
    for comment in text.ignored_comments:
        result.hint(
            "ignored_sourcemap_comment",
            f"Sentry ignores {comment!r}: it reads only `//# sourceMappingURL=…` (one space after #)",
        )
    debug_id = debug_id or text.debug_id
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
    sourcemap: File | None
    if embedded:
        assert reference is not None
        try:
            # Decoding and hashing an embedded map (megabytes of base64) off the loop.
            data, digest = await asyncio.to_thread(_decoded_with_sha1, reference)
        except sm.DataUrlError as exc:
            result.error = MALFORMED_SOURCEMAP
            result.step("source map", False, f"the embedded map cannot be decoded: {exc}")
            return None
        sourcemap = File(
            Artifact("embedded", "", "data:", "sourceMappingURL"),
            minified.resolved_with,
            digest,
            {},
            len(data),
            data=data,
        )
    else:
        sourcemap = await lookup.get_file(result, "source map", sm_url, debug_id, SOURCE_MAP)
    if sourcemap is None:
        result.error = MISSING_SOURCEMAP
        if sm_url:
            await _hints_for_missing(lookup, result, sm_url)
        return None
    map_file = sourcemap

    async def pair() -> tuple[bytes, bytes]:
        return await lookup.contents(minified), await lookup.contents(map_file)

    try:
        built, was_cached = await lookup.backend.sourcemaps.get((minified.sha1, sourcemap.sha1), pair, text)
    except MalformedSourcemap as exc:
        result.error = MALFORMED_SOURCEMAP
        result.step("source map", False, f"symbolic cannot read the pair: {exc}")
        return None
    except OSError as exc:
        result.error = MISSING_SOURCEMAP
        result.step("source map", False, f"cannot be read: {exc}")
        return None
    if built.map_debug_id and debug_id and built.map_debug_id != debug_id:
        result.hint(
            "debug_id_mismatch",
            f"the map's debug id is {built.map_debug_id}, the minified file's {debug_id}: "
            "they are not one build's pair",
        )
    cache = built.cache
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
        await _context_from_original(lookup, result, sm.join_paths(base, token.src))
    return token.name


async def _context_from_original(lookup: RequestLookup, result: FrameResult, source_url: str) -> None:
    """No `sourcesContent`: the original file as an artifact (symbolication.rs)."""
    found = await lookup.get_file(result, "original source", source_url, None, SOURCE)
    if found is None:
        result.error = MISSING_SOURCE_CONTENT
        result.hint(
            "missing_source_content",
            f"the map has no sourcesContent for {result.filename} and {source_url} was not uploaded",
        )
        return
    try:
        lines = (await lookup.contents(found)).decode("utf-8", "replace").splitlines()
    except OSError as exc:
        result.error = MISSING_SOURCE_CONTENT
        result.step("original source", False, f"cannot be read: {exc}")
        return
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
    lookup = RequestLookup(backend, org, project, release or None, dist or None)
    results = [FrameResult(f) for f in frames]
    callsite: str | None = None
    stack: int | None = None
    for result in results:
        if result.frame.stack != stack:
            stack, callsite = result.frame.stack, None
        # The callsite name passes only from a resolved frame to the next (symbolication.rs).
        callsite = await _resolve_frame(lookup, result, callsite)
    return ResolveResult(lookup.release, lookup.dist, results)


def _decoded_with_sha1(reference: str) -> tuple[bytes, str]:
    """Blocking: an embedded map's bytes and their sha1 (its cache key)."""
    data = sm.decode_data_url(reference)
    return data, hashlib.sha1(data, usedforsecurity=False).hexdigest()
