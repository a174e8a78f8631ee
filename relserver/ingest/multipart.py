"""Reading multipart bodies: aiohttp's reader without its `_charset_` step, part names, limits on
part headers, and the mapping of a malformed body to DRF's 400.

The only module below `api/` that knows aiohttp's multipart internals."""

from __future__ import annotations

import html
import re

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from .. import sentry
from ..errors import BadRequest

# Django's check on the boundary parameter (http/multipartparser.py).
_VALID_BOUNDARY = re.compile(r"[ -~]{0,200}[!-~]")


# The Content-Disposition every client here sends: `form-data; name="…"[; filename="…"]` with
# no escapes. aiohttp's general parser costs ~0.2 ms a call (it compiles its patterns each
# time), so simple headers take this precompiled path and anything else goes to aiohttp.
_SIMPLE_DISPOSITION = re.compile(r'form-data; name="([^"\\%]*)"(?:; filename="([^"\\%]*)")?')


def part_names(part: BodyPartReader) -> tuple[str | None, str | None]:
    """(name, filename) of a part, parsing its Content-Disposition once."""
    header = part.headers.get(hdrs.CONTENT_DISPOSITION, "")
    if match := _SIMPLE_DISPOSITION.fullmatch(header):
        return match.group(1), match.group(2)
    return part.name, part.filename


def sanitize_file_name(filename: str) -> str | None:
    """Django's MultiPartParser.sanitize_file_name, which runs before Sentry sees the name."""
    name = html.unescape(filename)
    name = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    return None if name in ("", ".", "..") else name


def bare_content_type(value: str | None) -> str:
    """The MIME type without parameters, lower-cased, as Django hands it to Sentry."""
    return sentry.header_text(value or "").split(";", 1)[0].strip().lower()


# Limits on each part's header block: aiohttp's defaults for HTTP headers, which
# `request.multipart()` would pass on from the server.
MAX_PART_HEADER_LINE = 8190


MAX_PART_HEADERS = 128


class FormDataReader(MultipartReader):
    """aiohttp's MultipartReader without its RFC 7578 `_charset_` step.

    aiohttp's `next()` runs its general Content-Disposition parser on every body's first
    part, only to see whether that part is named `_charset_`. The parser rebuilds an escape
    table on each call, which made it the largest single cost of a small upload on the loop
    thread. Django, which parses the body for Sentry (http/multipartparser.py), has no
    `_charset_` rule either: such a part is an ordinary field there and here. Everything else
    follows aiohttp's own sequence of steps.
    """

    async def next(self) -> MultipartReader | BodyPartReader | None:
        if self._at_eof:
            return None
        await self._maybe_release_last_part()
        if self._at_bof:
            await self._read_until_first_boundary()
            self._at_bof = False
        else:
            await self._read_boundary()
        if self._at_eof:
            return None
        self._last_part = await self.fetch_next_part()
        return self._last_part


async def open_multipart(request: web.Request) -> MultipartReader:
    """The request's multipart reader, or DRF's 400 for a missing or invalid boundary."""
    boundary = parse_mimetype(request.headers.get(hdrs.CONTENT_TYPE, "")).parameters.get("boundary")
    if not boundary or not _VALID_BOUNDARY.fullmatch(boundary):
        # Django's MultiPartParserError, as DRF words it (a missing boundary prints as None).
        raise BadRequest(f"Multipart form parse error - Invalid boundary in multipart: {boundary}")
    try:
        return FormDataReader(
            request.headers, request.content, max_field_size=MAX_PART_HEADER_LINE, max_headers=MAX_PART_HEADERS
        )
    except ValueError as exc:
        raise BadRequest(f"Multipart form parse error - Invalid boundary in multipart: {boundary}") from exc


# What aiohttp raises for a body that breaks the multipart rules (bad part headers included).
MALFORMED = (ValueError, HttpProcessingError)


def malformed(exc: Exception) -> BadRequest:
    """A body that breaks off or does not follow the multipart rules (DRF's ParseError)."""
    return BadRequest(f"Multipart form parse error - {exc}")
