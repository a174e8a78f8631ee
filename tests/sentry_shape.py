"""What a Sentry-shaped error answer is (DESIGN invariant 8), for the fuzzers to assert on every 4xx."""

from __future__ import annotations

import json
from typing import Any

# Sentry's catch-all for a path without its trailing slash (api/endpoints/catchall.py).
CATCH_ALL_HINT = "Route not found, did you forget a trailing slash?"
# Statuses Sentry answers with an empty body: a refused download (403), a catch-all or lookup
# miss (404), and a Range past the end (416, relserver's own: Sentry has no ranges).
EMPTY_BODY_STATUSES = frozenset({403, 404, 416})


def _is_field_errors(body: dict[str, Any]) -> bool:
    """DRF's serializer errors: every field maps to a list of messages (or, for list fields,
    index → list of messages)."""

    def messages(value: Any) -> bool:
        if isinstance(value, list):
            return bool(value) and all(isinstance(m, str) for m in value)
        if isinstance(value, dict):
            return bool(value) and all(messages(v) for v in value.values())
        return False

    return bool(body) and all(isinstance(k, str) and messages(v) for k, v in body.items())


def _is_detail(body: dict[str, Any]) -> bool:
    if set(body) != {"detail"}:
        return False
    detail = body["detail"]
    if isinstance(detail, str):
        return bool(detail)
    # SentryAPIException: {"code", "message", "extra"}.
    return isinstance(detail, dict) and set(detail) == {"code", "message", "extra"}


def sentry_shape_problem(status: int, content_type: str, body: bytes) -> str | None:
    """None when an answer is one Sentry could give; else what is wrong with it."""
    if status >= 500:
        return f"a {status}: {body[:300]!r}"
    if status < 400:
        if content_type == "application/json":
            try:
                json.loads(body)
            except ValueError:
                return "a success whose JSON does not parse"
        return None
    if not body:
        return None if status in EMPTY_BODY_STATUSES else f"an empty {status}"
    if status == 404 and content_type == "text/plain" and body.decode("utf-8", "replace").startswith(CATCH_ALL_HINT):
        return None
    if content_type != "application/json":
        return f"a {status} of type {content_type!r}: {body[:200]!r}"
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"a {status} whose JSON does not parse: {body[:200]!r}"
    if not isinstance(parsed, dict):
        return f"a {status} whose body is not an object: {parsed!r}"
    if _is_detail(parsed):
        return None
    # Chunk upload and assemble errors; the catch-all's JSON hint.
    if set(parsed) in ({"error"}, {"info"}) and isinstance(next(iter(parsed.values())), str):
        return None
    if status == 400 and _is_field_errors(parsed):
        return None
    return f"a {status} that is not Sentry-shaped: {parsed!r}"
