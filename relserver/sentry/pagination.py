"""Sentry's cursors and Link header (api/paginator.py ChainPaginator, utils/cursors.py, api/base.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import BadRequest

DEFAULT_PER_PAGE = 100


MAX_PER_PAGE = 100


# releases/endpoints/project_release_files.py: MAX_RELEASE_FILES_OFFSET.
MAX_RELEASE_FILES_OFFSET = 20_000


@dataclass(frozen=True, slots=True)
class Cursor:
    value: int | float
    offset: int
    is_prev: bool

    def __str__(self) -> str:
        return f"{self.value}:{self.offset}:{int(self.is_prev)}"


@dataclass(frozen=True, slots=True)
class Page:
    """Which rows one paginated request asks for, and the cursor page number it came with."""

    limit: int
    offset: int
    page: int


def parse_per_page(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PER_PAGE
    try:
        per_page = int(raw)
    except ValueError:
        raise BadRequest("Invalid per_page parameter.") from None
    if per_page > MAX_PER_PAGE:
        raise BadRequest(f"Invalid per_page value. Cannot exceed {MAX_PER_PAGE}.")
    return per_page


# The largest row offset a cursor may name: SQL's 64-bit OFFSET. Sentry parses cursors into
# Python numbers of any size (utils/cursors.py) and fails later; relserver says why up front.
MAX_CURSOR_OFFSET = 2**63 - 1


INVALID_CURSOR = "Invalid cursor parameter."


def parse_cursor(raw: str | None) -> Cursor | None:
    """`value:offset:is_prev` (utils/cursors.py Cursor.from_string); numbers past 64 bits are invalid."""
    if not raw:
        return None
    parts = raw.split(":")
    try:
        if len(parts) != 3:
            raise ValueError(raw)
        value: int | float = float(parts[0]) if "." in parts[0] else int(parts[0])
        cursor = Cursor(value=value, offset=int(parts[1]), is_prev=bool(int(parts[2])))
    except ValueError:
        raise BadRequest(INVALID_CURSOR) from None
    row_offset = cursor.value * cursor.offset
    if not math.isfinite(row_offset) or abs(row_offset) > MAX_CURSOR_OFFSET or abs(cursor.offset) > MAX_CURSOR_OFFSET:
        raise BadRequest(INVALID_CURSOR)
    return cursor


def offset_page(per_page: str | None, cursor: str | None, *, max_offset: int | None = None) -> Page:
    """The chained/offset paginators' reading of a cursor: row offset is the cursor offset times its value."""
    limit = parse_per_page(per_page)
    parsed = parse_cursor(cursor)
    page = parsed.offset if parsed else 0
    offset = int(parsed.offset * parsed.value) if parsed else 0
    if max_offset is not None and offset >= max_offset:
        raise BadRequest("Pagination offset too large")
    if limit <= 0:
        raise BadRequest("Limit must be positive")
    if offset < 0:
        raise BadRequest("Pagination offset cannot be negative")
    return Page(limit=limit, offset=offset, page=page)


def link_header(base_url: str, page: Page, *, has_more: bool) -> str:
    """Sentry's two-entry Link header; `base_url` ends with `?` and the query minus `cursor`."""
    prev_cursor = Cursor(page.limit, page.page - 1, True)
    next_cursor = Cursor(page.limit, page.page + 1, False)
    entries = []
    for name, cursor, results in (("previous", prev_cursor, page.page > 0), ("next", next_cursor, has_more)):
        entries.append(
            f'<{base_url}&cursor={cursor}>; rel="{name}"; results="{"true" if results else "false"}"; cursor="{cursor}"'
        )
    return ", ".join(entries)
