"""Sentry's lookup rules for a JavaScript frame's files and source map, as symbolicator applies
them (symbolicator-js `utils.rs`, `lookup.rs`; symbolic-debuginfo `js.rs`). Pure: no I/O.

Each function names the rule it reproduces; `docs/architecture.md` (Resolve) has the order.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass

# extract_file_stem (symbolicator-js utils.rs): suffixes trimmed from the last segment, repeatedly.
FILE_STEM_SUFFIXES = (".min", ".js", ".map", ".cjs", ".mjs", ".ts", ".d", ".jsx", ".tsx")

# get_function_for_token (utils.rs): names that say nothing; the caller's token name wins.
USELESS_FUNCTION_NAMES = frozenset({"<anonymous>", "__webpack_require__", "__webpack_modules__"})

# fixup_webpack_filename (utils.rs).
_WEBPACK_NAMESPACE = re.compile(r"^webpack://[a-zA-Z0-9_\-@\.]+/\./")

# generate_module (utils.rs): folder prefixes and hashes that say nothing about the module.
_CLEAN_MODULE = re.compile(
    r"""(?ix)
    ^(?:/|(?:(?:java)?scripts?|js|build|static|node_modules|bower_components|[_\.~].*?|
        v?(?:\d+\.)*\d+|[a-f0-9]{7,8}|[a-f0-9]{32}|[a-f0-9]{40})/)+
    |(?:[-\.][a-f0-9]{7,}$)
    """
)

# MagicCommentFinder (symbolic-debuginfo js.rs): exactly "//# " or "//@ " before the name.
_MAGIC_PREFIXES = ("//# ", "//@ ")
_SOURCE_MAPPING_URL = "sourceMappingURL="
_DEBUG_ID = "debugId="


def normalize_debug_id(value: object) -> str | None:
    """A debug id as Sentry compares them (lowercase, hyphenated), or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value.strip()[:36]))
    except ValueError:
        return None


def strip_hostname(path: str) -> str:
    """The path after the host (or after a leading `~`), with its leading `/` (utils.rs)."""
    if path.startswith("~"):
        return path[1:]
    scheme_sep = path.find("://")
    if scheme_sep >= 0:
        rest = path[scheme_sep + 3 :]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else rest
    return path


def file_stem(path: str) -> str:
    """What the artifact lookup is asked for: `https://x/assets/app.min.js?v=1` → `/assets/app`
    (extract_file_stem, utils.rs)."""
    path = strip_hostname(path)
    prefix, sep, name = path.rpartition("/")
    if not sep:
        return path
    name = name.split("?", 1)[0].split("#", 1)[0]
    trimmed = True
    while trimmed:
        trimmed = False
        for suffix in FILE_STEM_SUFFIXES:
            while suffix and name.endswith(suffix):
                name = name[: -len(suffix)]
                trimmed = True
    return f"{prefix}/{name}"


def candidate_urls(url: str) -> list[str]:
    """The names an artifact must carry exactly to be this URL's file, in Sentry's order
    (get_release_file_candidate_urls, utils.rs; after ReleaseFile.normalize)."""
    url = url.split("#", 1)[0]
    relative = strip_hostname(url)
    names = [url]
    if "?" in url:
        names.append(url.split("?", 1)[0])
    names.append(f"~{relative}")
    if "?" in relative:
        names.append("~" + relative.split("?", 1)[0])
    return names


def join_paths(base: str, right: str) -> str:
    """`right` joined onto `base`, `~/` counting as absolute (join_paths, utils.rs)."""
    if "://" in right or right.startswith("webpack:"):
        return right
    scheme, sep, rest = base.partition("://")
    if not sep:
        scheme, rest = "file", base
    right = right.removeprefix("~")
    if right.startswith("/"):
        if scheme == "file":
            return right
        if right.startswith("//"):
            return f"{scheme}://{right[2:]}"
        return f"{scheme}://{rest.split('/', 1)[0]}{right}"
    left = rest.split("/")
    out = ""
    if scheme != "file":
        out = f"{scheme}://{left.pop(0)}"
    elif left and left[0] == "":
        left.pop(0)
    if left:
        left.pop()  # the basename
    segments = left
    is_http = scheme in ("http", "https")
    first = True
    for segment in right.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
                continue
            if is_http:
                continue
        if segment == "." and (is_http or first):
            continue
        first = False
        segments.append(segment)
    return out + "".join(f"/{s}" for s in segments if s)


def _magic_comment(contents: str, name: str, *, allow_at: bool) -> str | None:
    """The value of the last `//# name=value` comment (MagicCommentFinder, js.rs)."""
    prefixes = _MAGIC_PREFIXES if allow_at else _MAGIC_PREFIXES[:1]
    end = len(contents)
    while True:
        pos = contents.rfind(name, 0, end)
        if pos < 0:
            return None
        if pos >= 4 and contents[pos - 4 : pos] in prefixes:
            value = contents[pos + len(name) :].lstrip()
            return value.split(maxsplit=1)[0] if value.strip() else ""
        end = pos + len(name) - 1


def discover_sourcemap_reference(contents: str) -> str | None:
    """The last `//# sourceMappingURL=` (or `//@`) comment's value, query and fragment cut
    (discover_sourcemaps_location, js.rs)."""
    value = _magic_comment(contents, _SOURCE_MAPPING_URL, allow_at=True)
    if value is None:
        return None
    return value.split("?", 1)[0].split("#", 1)[0]


def discover_debug_id(contents: str) -> str | None:
    """The last `//# debugId=` comment's debug id (discover_debug_id, js.rs; no `//@`)."""
    return normalize_debug_id(_magic_comment(contents, _DEBUG_ID, allow_at=False))


def ignored_sourcemap_comments(contents: str) -> list[str]:
    """`sourceMappingURL=` comments Sentry does not read (no space after `#`, a block comment,
    …), each as its text up to the end of the URL; for a hint only."""
    found = []
    for match in re.finditer(r"sourceMappingURL\s*=", contents):
        start = match.start()
        if start >= 4 and contents[start - 4 : start] in _MAGIC_PREFIXES and match.group() == _SOURCE_MAPPING_URL:
            continue
        line_start = contents.rfind("\n", 0, start) + 1
        snippet = contents[max(line_start, start - 8) : match.end()]
        rest = contents[match.end() :].lstrip(" \t")
        value = rest.split(maxsplit=1)[0] if rest.strip() else ""
        found.append((snippet + value)[:200])
    return found


def sourcemap_reference(headers: dict[str, str], contents: str) -> tuple[str | None, str]:
    """The map reference and where it came from: header `Sourcemap`, else `X-SourceMap`
    (case-insensitive), else the last comment (resolve_sourcemap_url, utils.rs)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for header in ("sourcemap", "x-sourcemap"):
        if header in lowered:
            return lowered[header], f"header {header}"
    return discover_sourcemap_reference(contents), "sourceMappingURL comment"


class DataUrlError(ValueError):
    """A `data:` URL that cannot be decoded."""


def decode_data_url(url: str) -> bytes:
    """The bytes of a `data:` URL, base64 or percent-encoded (SourceMapUrl::parse_with_prefix)."""
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise DataUrlError("a data: URL without a comma")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(urllib.parse.unquote_to_bytes(payload), validate=False)
        except (binascii.Error, ValueError) as exc:
            raise DataUrlError(f"undecodable base64: {exc}") from None
    return urllib.parse.unquote_to_bytes(payload)


def embedded_debug_id(sourcemap: bytes) -> str | None:
    """A source map's own debug id: `debug_id`, else `debugId` (discover_sourcemap_embedded_debug_id)."""
    try:
        data = json.loads(sourcemap)
    except (ValueError, UnicodeError):
        return None
    if not isinstance(data, dict):
        return None
    return normalize_debug_id(data.get("debug_id")) or normalize_debug_id(data.get("debugId"))


def fixup_webpack_filename(filename: str) -> str:
    """`webpack:///./x` and friends as Sentry shows them (fixup_webpack_filename, utils.rs)."""
    if "/~/" in filename:
        return "~/" + filename.split("/~/", 1)[1]
    if _WEBPACK_NAMESPACE.match(filename):
        return _WEBPACK_NAMESPACE.sub("./", filename, count=1)
    return filename.removeprefix("webpack:///")


def generate_module(abs_path: str) -> str:
    """A made-up module name from a URL (generate_module, utils.rs)."""
    path = strip_hostname(abs_path)
    path = re.split(r"[#?]", path, maxsplit=1)[0]
    cut = max(path.rfind("."), path.rfind("/"))
    if cut >= 0 and path[cut] == ".":
        path = path[:cut]
    path = path.removesuffix(".min")
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if len(segment) == 32 or (len(segment) == 40 and all(c in "0123456789abcdefABCDEF" for c in segment)):
            return "/".join(segments[i + 1 :])
    return _CLEAN_MODULE.sub("", path)


def function_for_token(frame_function: str | None, token_function: str, callsite_name: str | None) -> str:
    """The frame's function name (get_function_for_token, utils.rs)."""
    if token_function not in USELESS_FUNCTION_NAMES:
        return token_function
    if callsite_name:
        return callsite_name
    if frame_function is None:
        return token_function
    return frame_function


def fold_function_name(name: str) -> str:
    """Runs of a repeated segment before the last folded: `a.a.a` → `{a#2}.a` (utils.rs)."""
    parts = name.split(".")
    if len(parts) == 1:
        return name
    tail = parts.pop()
    groups: list[list[str]] = []
    for part in parts:
        if groups and groups[-1][-1] == part:
            groups[-1].append(part)
        else:
            groups.append([part])
    folded = ".".join(g[0] if len(g) == 1 else f"{{{g[0]}#{len(g)}}}" for g in groups)
    return f"{folded}.{tail}"


@dataclass(frozen=True, slots=True)
class UrlPrefixHint:
    """An uploaded name that shares its last segments with the frame's `~/` name: the
    `--url-prefix` that would have made them equal, and the folders (`strip_prefix`) the
    uploaded name carries before the shared part, if any."""

    uploaded: str
    expected: str
    url_prefix: str
    strip_prefix: str | None


def url_prefix_hint(abs_path: str, uploaded: str) -> UrlPrefixHint | None:
    """How sentry-cli's `--url-prefix` turns `uploaded` into the name this frame looks for;
    None when it already is one of its candidates or they share no last segment."""
    candidates = candidate_urls(abs_path)
    if uploaded in candidates:
        return None
    expected = candidates[-1]
    want = expected.removeprefix("~").split("/")
    have = strip_hostname(uploaded).split("/")
    common = 0
    while common < min(len(want), len(have)) and want[-1 - common] == have[-1 - common]:
        common += 1
    if common == 0:
        return None
    prefix = "/".join(want[: len(want) - common]) or "/"
    extra = "/".join(have[: len(have) - common]).strip("/")
    return UrlPrefixHint(uploaded, expected, "~" + prefix, f"{extra}/" if extra else None)
