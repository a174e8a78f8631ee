"""The resolve tests' app (tests/resolve_app): its committed build outputs, the Node stack
traces recorded with them, and the two truths a resolved frame is checked against: the
`MARK:` comments in the original source, and `node --enable-source-maps` on the same bundle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relserver.sentry.stacktraces import Frame, parse_stacktrace

APP = Path(__file__).parent / "resolve_app"
DIST = APP / "dist"
BUILDS = ("esbuild", "inline", "nocontent", "webpack", "injected")
# The frames of the app itself, caller-first, as `Error.stack` shows them (Node's own frames
# and `Array.map` are not the app's).
APP_PREFIX = "app:///dist/"


def app_frames(stack: str) -> list[Frame]:
    return [f for f in parse_stacktrace(stack) if f.abs_path.startswith(APP_PREFIX)]


def stack(build: str, dist: Path = DIST) -> str:
    return (dist / build / "stack.txt").read_text()


@dataclass(frozen=True)
class Expected:
    """Where Node's own source-map support puts a frame: the source file (relative to the
    app), line and column."""

    source: str
    lineno: int
    colno: int


_NODE_FRAME = re.compile(r"^\s*at (?:.+? \()?(?P<file>[^()]+):(?P<line>\d+):(?P<col>\d+)\)?$")


def node_truth(build: str, dist: Path = DIST) -> list[Expected]:
    """`node --enable-source-maps` frames of the app's sources, caller-first."""
    found = []
    for line in (dist / build / "node-stack.txt").read_text().splitlines():
        match = _NODE_FRAME.match(line)
        if match and "src/" in match.group("file"):
            source = "src/" + match.group("file").split("src/", 1)[1]
            found.append(Expected(source, int(match.group("line")), int(match.group("col"))))
    return found[::-1]


def marker_at(source: str, lineno: int) -> str | None:
    """The `MARK:name` on that line of the original source, if any."""
    line = (APP / source).read_text().splitlines()[lineno - 1]
    match = re.search(r"MARK:(\w+)", line)
    return match.group(1) if match else None


# Caller-first: the top-level call, checkout, Cart.describe, the arrow in map, formatPrice.
MARKERS = ["checkout", "describe", "map", "map", "throw"]
# webpack (terser) inlines checkout into the top level, and its map puts that frame on the
# try statement's closing line: `node --enable-source-maps` says the same line.
WEBPACK_MARKERS = [None, "describe", "map", "map", "throw"]


def source_of(frame: dict[str, Any]) -> str:
    """The app-relative source of a resolved frame's abs_path (`app:///src/x.js`,
    `webpack://…/./src/x.js` → `src/x.js`)."""
    path = str(frame["abs_path"])
    return "src/" + path.split("src/", 1)[1]


def assert_matches_both_truths(frames: list[dict[str, Any]], build: str, dist: Path = DIST) -> None:
    """Every app frame resolved, at Node's own file:line:col, on the marked source line."""
    assert [f["resolved"] for f in frames] == [True] * len(frames), [f["steps"] for f in frames]
    truth = node_truth(build, dist)
    got = [Expected(source_of(f), f["lineno"], f["colno"]) for f in frames]
    assert [(g.source, g.lineno) for g in got] == [(t.source, t.lineno) for t in truth]
    if build != "webpack":
        # webpack's maps hold statement starts only; Node and Sentry then differ in column.
        assert got == truth
    markers = WEBPACK_MARKERS if build == "webpack" else MARKERS
    assert [marker_at(g.source, g.lineno) for g in got] == markers
    for f, marker in zip(frames, markers, strict=True):
        assert (f"MARK:{marker}" if marker else "") in (f["context_line"] or ""), f
