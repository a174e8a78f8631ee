"""The release list's `query`: Sentry's release search (api/release_search.py over the
event search grammar, api/event_search.py) and what each filter means
(releases/endpoints/organization_releases.py _filter_releases_by_query)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import ReleaseCondition
from .fields import utc_datetime
from .semver import MAX_BIGINT, MAX_BIGINT_DIGITS, OPERATOR_TO_DJANGO, InvalidSearchQuery, negation, parse_semver

RELEASE_ALIAS = "release"
SEMVER_ALIAS = "release.version"
SEMVER_PACKAGE_ALIAS = "release.package"
SEMVER_BUILD_ALIAS = "release.build"
RELEASE_STAGE_ALIAS = "release.stage"
FINALIZED_KEY = "finalized"
RELEASE_CREATED_KEY = "release.created"
# release_search_config's allowed_keys.
ALLOWED_KEYS = frozenset(
    {
        RELEASE_ALIAS,
        SEMVER_ALIAS,
        SEMVER_PACKAGE_ALIAS,
        SEMVER_BUILD_ALIAS,
        RELEASE_STAGE_ALIAS,
        FINALIZED_KEY,
        RELEASE_CREATED_KEY,
    }
)
# ReleaseStages (models/releaseprojectenvironment.py).
RELEASE_STAGES = frozenset({"adopted", "low_adoption", "replaced"})
# The event search grammar's key: letters, digits and `_.-`, or a `tags[…]` key.
_KEY = re.compile(r"(!?)([a-zA-Z0-9_.-]+|tags\[[^\]]+\]):")
_OPERATOR = re.compile(r"(>=|<=|>|<|=|!=)")
# organization_releases.py _release_suffix: "1.0 (abc)" also finds "1.0+abc".
_RELEASE_SUFFIX = re.compile(r"^(.*)\s+\(([^)]+)\)\s*$")
BOOLEAN_NOT_SUPPORTED = 'Boolean statements containing "OR" or "AND" are not supported in this search'


@dataclass(frozen=True, slots=True)
class SearchFilter:
    key: str
    operator: str  # = != > >= < <= IN "NOT IN"
    value: str | tuple[str, ...]


def _quoted(text: str, start: int) -> tuple[str, int]:
    """A `"…"` value from `start` (at the opening quote): its text and the end index."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] == '"':
            out.append('"')
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise InvalidSearchQuery(f"Invalid quote at '{text[start:]}': quotes must enclose text or be escaped.")


def _value(text: str, start: int) -> tuple[str | tuple[str, ...], int]:
    if start < len(text) and text[start] == '"':
        return _quoted(text, start)
    if start < len(text) and text[start] == "[":
        end = text.find("]", start)
        if end != -1 and (end + 1 == len(text) or text[end + 1].isspace()):
            items = tuple(v.strip().strip('"') for v in text[start + 1 : end].split(","))
            return items, end + 1
    end = start
    while end < len(text) and not text[end].isspace():
        end += 1
    value = text[start:end]
    if '"' in value:
        raise InvalidSearchQuery(f"Invalid quote at '{value}': quotes must enclose text or be escaped.")
    return value, end


def parse_search_query(query: str) -> list[SearchFilter]:
    """`key:value` filters (`!` negates, `>`/`>=`/`<`/`<=` compare, `[a, b]` lists); every
    other word is free text, collected into one free-text filter."""
    filters: list[SearchFilter] = []
    free: list[str] = []
    i = 0
    while i < len(query):
        if query[i].isspace():
            i += 1
            continue
        key_match = _KEY.match(query, i)
        if key_match is None:
            end = i
            if query[i] == '"':
                word, end = _quoted(query, i)
            else:
                while end < len(query) and not query[end].isspace():
                    end += 1
                word = query[i:end]
            if word in ("AND", "OR"):
                raise InvalidSearchQuery(BOOLEAN_NOT_SUPPORTED)
            free.append(word)
            i = end
            continue
        negated, key = key_match.group(1) == "!", key_match.group(2)
        if key not in ALLOWED_KEYS:
            raise InvalidSearchQuery(f"Invalid key for this search: {key}")
        i = key_match.end()
        operator = "="
        op_match = _OPERATOR.match(query, i)
        if op_match is not None and not isinstance(_value(query, op_match.end())[0], tuple):
            operator = op_match.group(1)
            i = op_match.end()
        value, i = _value(query, i)
        if isinstance(value, tuple):
            operator = "NOT IN" if negated else "IN"
        elif negated:
            operator = "!=" if operator == "=" else operator
        filters.append(SearchFilter(key, operator, value))
    if free:
        filters.append(SearchFilter("release_free_text", "=", " ".join(free)))
    return filters


def _wildcard(value: str) -> tuple[str, str]:
    """SearchValue.classify_and_format_wildcard: prefix, suffix, infix or other."""
    if "*" not in value:
        return "none", value
    inner = value.strip("*")
    if "*" not in inner and inner:
        if value.startswith("*") and value.endswith("*"):
            return "infix", inner
        if value.endswith("*") and not value.startswith("*"):
            return "prefix", inner
        if value.startswith("*") and not value.endswith("*"):
            return "suffix", inner
    return "other", value


def _text(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _release_condition(f: SearchFilter) -> ReleaseCondition:
    if isinstance(f.value, tuple):
        return ReleaseCondition("version", "in", values=f.value, negated=f.operator == "NOT IN")
    kind, value = _wildcard(f.value)
    if kind in ("prefix", "suffix", "infix"):
        return ReleaseCondition("version", kind, values=(value,))
    if f.operator == "!=":
        return ReleaseCondition("version", "exact", values=(f.value,), negated=True)
    # `release:latest` needs event data (get_latest_release); without it no release is latest.
    if f.value == "latest":
        return ReleaseCondition("nothing")
    return ReleaseCondition("version", "exact", values=(f.value,))


def _build_condition(f: SearchFilter) -> ReleaseCondition:
    """ReleaseQuerySet.filter_by_semver_build: a decimal build compares build numbers;
    otherwise the build code matches exactly, or by prefix before a trailing `*`."""
    operator, negated = negation(f.operator)
    if operator not in OPERATOR_TO_DJANGO:
        raise InvalidSearchQuery("Invalid operation 'IN' for semantic version filter.")
    build = _text(f.value)
    if build.isdecimal() and build.isascii() and len(build) <= MAX_BIGINT_DIGITS and int(build) <= MAX_BIGINT:
        return ReleaseCondition("build_number", OPERATOR_TO_DJANGO[operator], number=int(build), negated=negated)
    if not build or build.endswith("*"):
        return ReleaseCondition("build_code", "prefix", values=(build[:-1],), negated=negated)
    return ReleaseCondition("build_code", "exact", values=(build,), negated=negated)


def _created_condition(f: SearchFilter) -> ReleaseCondition:
    text = _text(f.value)
    try:
        when = utc_datetime(text)
    except (ValueError, OverflowError):
        raise InvalidSearchQuery(
            f"{f.key}: Invalid date: {text}. Expected ISO 8601-like (e.g. 2024-01-31T00:00:00)."
        ) from None
    operator, negated = negation(f.operator)
    if operator not in OPERATOR_TO_DJANGO:
        raise InvalidSearchQuery(f"Invalid operation for {f.key}.")
    return ReleaseCondition("created", OPERATOR_TO_DJANGO[operator], when=when, negated=negated)


def _stage_condition(f: SearchFilter) -> ReleaseCondition | None:
    """filter_by_stage: stages come from session adoption, which relserver has none of."""
    values = f.value if isinstance(f.value, tuple) else (f.value,)
    if any(v not in RELEASE_STAGES for v in values):
        raise InvalidSearchQuery("Unsupported release.stage value.")
    if f.operator in ("=", "IN"):
        return ReleaseCondition("nothing")
    if f.operator in ("!=", "NOT IN"):
        return None
    raise InvalidSearchQuery("Unsupported operator for release.stage")


def neighbour_query(query: str | None) -> list[str]:
    """add_query_filter_to_queryset (organization_release_details.py): the details' `query`
    is a plain substring (with the "1.0 (abc)" → "1.0+abc" variant), not a search."""
    if not query:
        return []
    values = [query]
    if (suffix := _RELEASE_SUFFIX.match(query)) is not None:
        values.append(f"{suffix.group(1)}+{suffix.group(2)}")
    return values


def release_conditions(query: str) -> list[ReleaseCondition]:
    """The catalog conditions of a release list's `query`; raises InvalidSearchQuery."""
    conditions: list[ReleaseCondition] = []
    for f in parse_search_query(query):
        if f.key == "release_free_text":
            # The whole query, not only its free words, is the substring (organization_releases.py).
            conditions.append(ReleaseCondition("contains", values=tuple(neighbour_query(query))))
        elif f.key == FINALIZED_KEY:
            if f.value in ("true", "false"):
                conditions.append(ReleaseCondition("finalized", flag=f.value == "true"))
        elif f.key == RELEASE_ALIAS:
            conditions.append(_release_condition(f))
        elif f.key == SEMVER_ALIAS:
            semver = parse_semver(_text(f.value), f.operator if not isinstance(f.value, tuple) else "IN")
            conditions.append(
                ReleaseCondition(
                    "semver", semver.operator, parts=semver.parts, package=semver.package, negated=semver.negated
                )
            )
        elif f.key == SEMVER_PACKAGE_ALIAS:
            conditions.append(ReleaseCondition("package", package=_text(f.value), negated=f.operator == "!="))
        elif f.key == SEMVER_BUILD_ALIAS:
            conditions.append(_build_condition(f))
        elif f.key == RELEASE_STAGE_ALIAS:
            stage = _stage_condition(f)
            if stage is not None:
                conditions.append(stage)
        elif f.key == RELEASE_CREATED_KEY:
            conditions.append(_created_condition(f))
    return conditions


__all__ = ["InvalidSearchQuery", "SearchFilter", "neighbour_query", "parse_search_query", "release_conditions"]
