"""Hints Sentry does not give, read from what was uploaded: the file is there under another
dist or release, or under a name a `--url-prefix` away; the position lies past the end of the
uploaded file. Pure functions over names and text."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import UploadedName
from ..sentry import sourcemaps as sm

# How many near names a hint lists.
MAX_NAME_HINTS = 3


def _where(name: UploadedName) -> str:
    what = "a bundle" if name.kind == "artifact_bundle" else "a release file"
    release = f"release {name.release!r}" if name.release else "no release"
    dist = f"dist {name.dist!r}" if name.dist else "no dist"
    return f"{what} of {release}, {dist}"


def missing_file_hints(
    abs_path: str, names: Iterable[UploadedName], release: str | None, dist: str | None
) -> list[tuple[str, str]]:
    """(kind, detail) for a file the lookup did not find, from the project's uploaded names
    that share its last path segment."""
    candidates = sm.candidate_urls(abs_path)
    hints: list[tuple[str, str]] = []
    prefixes: list[tuple[int, sm.UrlPrefixHint, UploadedName]] = []
    seen: set[tuple[str, str | None, str | None]] = set()
    for name in names:
        key = (name.name, name.release, name.dist)
        if key in seen:
            continue
        seen.add(key)
        if name.name in candidates:
            if name.release == release and name.dist != dist:
                want = f"dist {dist!r}" if dist else "no dist"
                hints.append(("other_dist", f"{name.name} was uploaded as {_where(name)}; the event has {want}"))
            elif name.release != release:
                want = f"release {release!r}" if release else "no release"
                hints.append(("other_release", f"{name.name} was uploaded as {_where(name)}; the event has {want}"))
            continue
        hint = sm.url_prefix_hint(abs_path, name.name)
        if hint is not None:
            shared = len(hint.expected.split("/")) - len(hint.url_prefix.removeprefix("~").rstrip("/").split("/"))
            prefixes.append((shared, hint, name))
    prefixes.sort(key=lambda item: -item[0])
    for _, hint, name in prefixes[:MAX_NAME_HINTS]:
        how = f"--url-prefix '{hint.url_prefix}'"
        if hint.strip_prefix:
            # The folders before the shared part were uploaded as part of the name.
            how = f"{how}, uploading the folder {hint.strip_prefix} itself rather than its parent"
        hints.append(
            (
                "url_prefix",
                f"the nearest uploaded name is {hint.uploaded} ({_where(name)}); the frame needs "
                f"{hint.expected}: upload with {how}",
            )
        )
    return hints


def _utf16_length(text: str) -> int:
    """A line's length in UTF-16 code units, as JavaScript counts columns."""
    return len(text.encode("utf-16-le")) // 2


def position_hints(text: str, lineno: int, colno: int) -> list[tuple[str, str]]:
    """A position past the end of the uploaded minified file: not the file that ran."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lineno > len(lines):
        return [
            (
                "past_end_of_file",
                f"line {lineno} is past the end of the uploaded file ({len(lines)} line(s)): "
                "it is not the file that ran",
            )
        ]
    length = _utf16_length(lines[lineno - 1].rstrip("\r"))
    if colno > length + 1:
        return [
            (
                "past_end_of_file",
                f"column {colno} is past the end of line {lineno} ({length} characters): "
                "the uploaded file is not the file that ran",
            )
        ]
    return []
