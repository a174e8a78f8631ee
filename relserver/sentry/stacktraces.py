"""The three ways a stack reaches resolve: a list of frames, a whole Sentry event, or a raw
JavaScript `Error.stack` string (V8, SpiderMonkey, JavaScriptCore). Pure: no I/O.

Every parser returns frames caller-first (outermost call first, the throwing frame last), the
order of a Sentry event's frames; stack strings are callee-first and are reversed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .sourcemaps import normalize_debug_id

# Our bound on one request's frames; Sentry's JavaScript SDK keeps at most 50 per stack
# (STACKTRACE_FRAME_LIMIT in @sentry/core), so 1000 covers twenty stacks of an event.
MAX_FRAMES = 1000


class ResolveInputError(ValueError):
    """Input resolve cannot use; the message says what is wrong (a 400's detail)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One minified frame: where it ran (1-based line and column), and what else is known."""

    abs_path: str
    lineno: int | None
    colno: int | None = None
    function: str | None = None
    debug_id: str | None = None
    # Which stack of the input it belongs to: the callsite name passes only within one.
    stack: int = 0


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    frames: list[Frame]
    release: str | None
    dist: str | None


# V8 (Chrome, Node, Edge): `    at fn (url:line:col)` or `    at url:line:col`; split by hand
# (`_v8_frame`), as a regular expression for it backtracks quadratically on `at a (a (a (…`.
_V8_PREFIX = re.compile(r"^\s*at ")
# SpiderMonkey (Firefox) and JavaScriptCore (Safari): `fn@url:line:col`, `@url:line:col`,
# JavaScriptCore also `global code@url:line:col` and bare `url:line:col`.
_AT = re.compile(r"^(?P<function>[^@]*)@(?P<loc>.+)$")
_LOCATION = re.compile(r"^(?P<url>.+?):(?P<line>\d+)(?::(?P<col>\d+))?$")


# Lines and columns are 32-bit in Sentry's frames (and symbolic's lookup).
MAX_POSITION = 2**31 - 1


def _location(text: str) -> tuple[str, int, int | None] | None:
    match = _LOCATION.match(text.strip())
    if not match:
        return None
    # A position longer than MAX_POSITION's 10 digits is no frame; it never reaches int(),
    # which refuses more than 4 300 digits.
    if len(match.group("line")) > 10 or len(match.group("col") or "") > 10:
        return None
    line, col = int(match.group("line")), int(match.group("col") or 0)
    if line > MAX_POSITION or col > MAX_POSITION:
        return None
    return match.group("url"), line, col if match.group("col") else None


def _v8_frame(line: str) -> tuple[str | None, str] | None:
    """(function, location) of a V8 frame line: `at fn (loc)` splits at the first ` (` after
    the function's first character when the line ends with `)`; otherwise it is `at loc`."""
    prefix = _V8_PREFIX.match(line)
    if prefix is None:
        return None
    rest = line[prefix.end() :]
    if not rest:
        return None
    split = rest.find(" (", 1)
    if rest.endswith(")") and split != -1 and len(rest) - 1 > split + 2:
        return rest[:split], rest[split + 2 : -1]
    return None, rest


def _stack_line(line: str) -> Frame | None:
    v8 = _v8_frame(line)
    if v8:
        function, loc = v8
        # `at eval (eval at fn (url:1:2), <anonymous>:1:1)`: the eval'd code has no file.
        if loc.startswith("eval at "):
            return None
        found = _location(loc)
        if found is None:
            return None
        url, lineno, colno = found
        if function and function.startswith("async "):
            function = function[len("async ") :]
        return Frame(url, lineno, colno, function or None)
    at = _AT.match(line.strip())
    if at:
        found = _location(at.group("loc"))
        if found is None:
            return None
        url, lineno, colno = found
        return Frame(url, lineno, colno, at.group("function") or None)
    found = _location(line)
    if found is not None and "://" in found[0]:
        return Frame(*found)
    return None


def parse_stacktrace(text: str) -> list[Frame]:
    """Frames from an `Error.stack` string, caller-first; message lines and frames without a
    file (native code, `(index 0)`) are skipped."""
    if not isinstance(text, str):
        raise ResolveInputError("stacktrace must be a string: a JavaScript Error.stack")
    frames = [f for f in (_stack_line(line) for line in text.splitlines()) if f is not None]
    if not frames:
        raise ResolveInputError(
            "no frames found in the stack trace: expected V8 lines (`    at fn (url:line:col)`) or "
            "SpiderMonkey/JavaScriptCore lines (`fn@url:line:col`)"
        )
    _check_count(len(frames))
    return frames[::-1]


def _check_count(count: int) -> None:
    if count > MAX_FRAMES:
        raise ResolveInputError(f"too many frames: {count} (at most {MAX_FRAMES})")


def _optional_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResolveInputError(f"{where}: must be an integer or null")
    if not -MAX_POSITION - 1 <= value <= MAX_POSITION:
        raise ResolveInputError(f"{where}: out of range")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResolveInputError(f"{where}: must be a string or null")
    return value


def _frame(raw: Any, where: str, *, stack: int = 0, images: dict[str, str] | None = None) -> Frame:
    if not isinstance(raw, dict):
        raise ResolveInputError(f"{where}: must be an object with abs_path, lineno and colno")
    abs_path = raw.get("abs_path")
    if not isinstance(abs_path, str) or not abs_path:
        raise ResolveInputError(f"{where}.abs_path: a non-empty string is required")
    raw_debug_id = _optional_str(raw.get("debug_id"), f"{where}.debug_id")
    debug_id = normalize_debug_id(raw_debug_id)
    if raw_debug_id is not None and debug_id is None:
        raise ResolveInputError(f"{where}.debug_id: not a debug id (a UUID): {raw_debug_id!r}")
    if debug_id is None and images is not None:
        debug_id = images.get(abs_path)
    return Frame(
        abs_path=abs_path,
        lineno=_optional_int(raw.get("lineno"), f"{where}.lineno"),
        colno=_optional_int(raw.get("colno"), f"{where}.colno"),
        function=_optional_str(raw.get("function"), f"{where}.function"),
        debug_id=debug_id,
        stack=stack,
    )


def parse_frames(raw: Any) -> list[Frame]:
    """A JSON list of `{"abs_path", "lineno", "colno", "function"?, "debug_id"?}`, caller-first."""
    if not isinstance(raw, list) or not raw:
        raise ResolveInputError("frames must be a non-empty list of {abs_path, lineno, colno} objects")
    _check_count(len(raw))
    return [_frame(f, f"frames[{i}]") for i, f in enumerate(raw)]


def _values(container: Any) -> list[Any]:
    """An interface that is `{"values": [...]}` or, in old events, the list itself."""
    if isinstance(container, dict):
        container = container.get("values")
    return container if isinstance(container, list) else []


def debug_images(event: dict[str, Any]) -> dict[str, str]:
    """`code_file` → debug id of the event's `sourcemap` images (debug_meta.images)."""
    meta = event.get("debug_meta")
    images = meta.get("images") if isinstance(meta, dict) else None
    found: dict[str, str] = {}
    for image in images if isinstance(images, list) else []:
        if not isinstance(image, dict) or image.get("type") != "sourcemap":
            continue
        code_file, debug_id = image.get("code_file"), normalize_debug_id(image.get("debug_id"))
        if isinstance(code_file, str) and debug_id:
            found[code_file] = debug_id
    return found


def parse_event(raw: Any) -> ParsedEvent:
    """A Sentry event's JavaScript frames (exception stack traces, then `stacktrace`, then
    threads), each with the debug id of the image whose `code_file` is its `abs_path`."""
    if not isinstance(raw, dict):
        raise ResolveInputError("event must be a Sentry event object")
    images = debug_images(raw)
    stacks: list[tuple[str, Any]] = []
    for i, exc in enumerate(_values(raw.get("exception"))):
        if isinstance(exc, dict):
            stacks.append((f"event.exception.values[{i}].stacktrace", exc.get("stacktrace")))
    stacks.append(("event.stacktrace", raw.get("stacktrace")))
    for i, thread in enumerate(_values(raw.get("threads"))):
        if isinstance(thread, dict):
            stacks.append((f"event.threads.values[{i}].stacktrace", thread.get("stacktrace")))
    frames: list[Frame] = []
    for number, (where, stack) in enumerate(stacks):
        raw_frames = stack.get("frames") if isinstance(stack, dict) else None
        for j, f in enumerate(raw_frames if isinstance(raw_frames, list) else []):
            # Sentry processes only frames that carry an abs_path.
            if isinstance(f, dict) and f.get("abs_path"):
                frames.append(_frame(f, f"{where}.frames[{j}]", stack=number, images=images))
    if not frames:
        raise ResolveInputError("the event has no frames with an abs_path (exception.values[].stacktrace.frames)")
    _check_count(len(frames))
    release = _optional_str(raw.get("release"), "event.release")
    dist = _optional_str(raw.get("dist"), "event.dist")
    return ParsedEvent(frames, release or None, dist or None)


def parse_frame_argument(text: str) -> Frame:
    """`URL:LINE:COL` (or `URL:LINE`) as the command line takes a frame."""
    found = _location(text)
    if found is None:
        raise ResolveInputError(f"not a frame: {text!r} (give URL:LINE:COL, e.g. https://example.com/app.js:1:234)")
    return Frame(*found)
