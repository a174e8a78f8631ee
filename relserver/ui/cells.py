"""The cells every table row repeats, as Jinja filters: human-readable, with the exact value
on hover (`title`). A macro call per cell costs several times as much to render, and a page
of 100 files has 600 of them. Each builds its markup from our own text (dates, numbers) and
from `escape`d values (names, hashes, headers), which is why S704 is silenced for this file."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup, escape


def _human_size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = (datetime.now(UTC) - value).total_seconds()
    if seconds < 0:
        return value.strftime("%Y-%m-%d %H:%M")
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "min"), (86400, 3600, "h"), (86400 * 30, 86400, "d")):
        if seconds < limit:
            return f"{int(seconds // div)} {unit} ago"
    return value.strftime("%Y-%m-%d")


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else ""


def _number(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _date_html(value: datetime | None) -> Markup:
    if value is None:
        return Markup("—")
    iso = _iso(value)
    return Markup(f'<time datetime="{iso}" title="{iso}">{_ago(value)}</time>')


def _size_html(value: int | None) -> Markup:
    if value is None:
        return Markup("—")
    return Markup(f'<span class="num" title="{int(value)} bytes">{_human_size(value)}</span>')


def _count_html(value: int) -> Markup:
    return Markup(f'<span class="num" title="{int(value)}">{_number(value)}</span>')


def _sha1_html(value: str) -> Markup:
    return Markup(f'<code title="{escape(value)}">{escape(value[:12])}</code>')


def _headers_html(values: dict[str, str]) -> Markup:
    if not values:
        return Markup("—")
    items = "".join(f"<li><code>{escape(k)}: {escape(v)}</code></li>" for k, v in sorted(values.items()))
    return Markup(f'<ul class="headers">{items}</ul>')


FILTERS = {
    "human_size": _human_size,
    "ago": _ago,
    "iso": _iso,
    "number": _number,
    "date_html": _date_html,
    "size_html": _size_html,
    "count_html": _count_html,
    "sha1_html": _sha1_html,
    "headers_html": _headers_html,
}
