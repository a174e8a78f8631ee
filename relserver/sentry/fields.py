"""DRF field semantics as Sentry's serializers use them: strings, dates, URLs, versions, and the
messages clients compare byte for byte (rest_framework/fields.py, django/core/validators.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ..errors import BadRequest

# DRF field error messages (rest_framework/fields.py), used by Sentry's serializers.
FIELD_REQUIRED = "This field is required."


FIELD_BLANK = "This field may not be blank."


FIELD_NULL = "This field may not be null."


FIELD_NOT_STRING = "Not a valid string."


# Sentry's release version length (models/release.py DB_VERSION_LENGTH).
MAX_VERSION_LENGTH = 200


# Sentry's BAD_RELEASE_CHARS (constants.py): "\r\n\f\x0c\t/\\".
_BAD_RELEASE_CHARS = frozenset("\r\n\f\x0c\t/\\")


def is_valid_version(version: str) -> bool:
    """Sentry's Release.is_valid_version (models/release.py, newest rules)."""
    if any(c in _BAD_RELEASE_CHARS for c in version):
        return False
    stripped = version.strip()
    return stripped not in ("", ".", "..") and stripped.lower() != "latest"


# DRF CharField's default validators (rest_framework/fields.py ProhibitNullCharactersValidator,
# ProhibitSurrogateCharactersValidator); Sentry's serializers inherit them.
FIELD_NULL_CHARACTERS = "Null characters are not allowed."


def surrogate_error(code_point: int) -> str:
    """DRF's message for a lone surrogate in a string field."""
    return f"Surrogate characters are not allowed: U+{code_point:X}."


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def first_surrogate(value: Any) -> int | None:
    """The first lone surrogate in a parsed JSON value (strings at any depth, keys too), or None.

    `json.loads` turns `"\\ud800"` into a lone surrogate, which no database can store and no
    response can encode; DRF's string fields refuse them, so relserver refuses them in any field.
    Iterative, so no nesting `json.loads` accepts can exhaust the stack here.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found = LONE_SURROGATE.search(item)
            if found:
                return ord(found.group())
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                pending += (child, key)
        elif isinstance(item, list):
            pending.extend(reversed(item))
    return None


def reject_surrogates(data: Any) -> None:
    """A DRF field error for every top-level field holding a lone surrogate (keys included)."""
    if not isinstance(data, dict):
        code_point = first_surrogate(data)
        if code_point is not None:
            raise BadRequest({"non_field_errors": [surrogate_error(code_point)]})
        return
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        code_point = first_surrogate(value)
        if code_point is None:
            continue
        # A key that is itself undecodable cannot be named in the answer; DRF would ignore it
        # as an unknown field, but it cannot be stored either.
        field = key if first_surrogate(key) is None else "non_field_errors"
        errors[field] = [surrogate_error(code_point)]
    for key in data:
        code_point = first_surrogate(key)
        if code_point is not None:
            errors.setdefault("non_field_errors", [surrogate_error(code_point)])
    if errors:
        raise BadRequest(errors)


def string_field(
    data: dict[str, Any],
    key: str,
    errors: dict[str, list[str]],
    *,
    max_length: int | None = None,
    trim: bool = False,
) -> str | None:
    """DRF CharField(required=True) semantics for one key; `trim` is its trim_whitespace."""
    if key not in data:
        errors[key] = [FIELD_REQUIRED]
        return None
    value = data[key]
    if value is None:
        errors[key] = [FIELD_NULL]
        return None
    # DRF's CharField turns numbers into strings and refuses everything else.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[key] = [FIELD_NOT_STRING]
        return None
    value = str(value).strip() if trim else str(value)
    if value == "":
        errors[key] = [FIELD_BLANK]
        return None
    if max_length is not None and len(value) > max_length:
        errors[key] = [f"Ensure this field has no more than {max_length} characters."]
        return None
    if "\x00" in value:
        errors[key] = [FIELD_NULL_CHARACTERS]
        return None
    return value


def optional_string_field(
    data: dict[str, Any], key: str, errors: dict[str, list[str]], *, max_length: int | None = None
) -> str | None:
    """DRF CharField(required=False, allow_blank=True, allow_null=True): absent, null and "" are None."""
    if data.get(key) in (None, ""):
        return None
    return string_field(data, key, errors, max_length=max_length)


def url_field(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str | None:
    """DRF URLField(required=False, allow_blank=True, allow_null=True)."""
    value = optional_string_field(data, key, errors)
    if value is not None and not is_valid_url(value):
        errors[key] = [INVALID_URL]
        return None
    return value


# ReleaseStatus (models/release.py): the two values a client may send.
RELEASE_STATUSES = ("open", "archived")


def validate_status(data: dict[str, Any], errors: dict[str, list[str]]) -> str | None:
    value = data.get("status")
    if value is None:
        return None
    if value not in RELEASE_STATUSES:
        errors["status"] = [f"Invalid status {value}"]
        return None
    return str(value)


# DRF DateTimeField's message for an unparsable value.
DATETIME_FORMAT_ERROR = (
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)


# DRF DateTimeField's 'overflow' message.
DATETIME_OUT_OF_RANGE = "Datetime value out of range."


def utc_datetime(text: str) -> datetime:
    """An ISO 8601 date in UTC, naive ones taken as UTC (Sentry's TIME_ZONE); ValueError when it
    is not one, OverflowError when it has no UTC twin in Python's range (0001-01-01T00:00+01:00)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def datetime_field(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> datetime | None:
    """An optional DRF DateTimeField; naive values are UTC (Sentry's TIME_ZONE)."""
    value = data.get(key)
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        errors[key] = [DATETIME_FORMAT_ERROR]
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        # Stored and shown in UTC; 9999-12-31T23:59:59-14:00 has no UTC twin in Python's range.
        return parsed.astimezone(UTC)
    except OverflowError:
        errors[key] = [DATETIME_OUT_OF_RANGE]
        return None


def validate_version_field(data: dict[str, Any], errors: dict[str, list[str]]) -> str | None:
    """The `version` field of Sentry's release serializers (api/serializers/rest_framework/release.py)."""
    version = string_field(data, "version", errors, max_length=MAX_VERSION_LENGTH)
    if version is not None and not is_valid_version(version):
        errors["version"] = [f"Release with name {version} is not allowed"]
        return None
    return version


def expect_object(data: Any) -> dict[str, Any]:
    """DRF's serializer refuses a body that is not a JSON object with this non-field error."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "NoneType"
        raise BadRequest({"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]})
    return data


# Django's URLValidator (core/validators.py), which DRF's URLField runs: a scheme of http(s) or
# ftp(s), an optional user:password@, a host that is a dotted name with a TLD, `localhost`, an
# IPv4 or a bracketed IPv6 address, an optional port, then no whitespace; 2048 characters at most.
_URL_SCHEMES = ("http", "https", "ftp", "ftps")


MAX_URL_LENGTH = 2048


_LABEL = r"[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?"


_TLD = r"\.(?!-)(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)\.?"


_IPV4 = (
    r"(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)(?:\.(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)){3}"
)


_URL = re.compile(
    rf"(?i)[a-z0-9.+-]*://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"
    rf"(?:{_IPV4}|\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*{_TLD}|localhost)"
    rf"(?::[0-9]{{1,5}})?(?:[/?#][^\s]*)?"
)


INVALID_URL = "Enter a valid URL."


def is_valid_url(value: str) -> bool:
    if len(value) > MAX_URL_LENGTH or value.split("://", 1)[0].lower() not in _URL_SCHEMES:
        return False
    return _URL.fullmatch(value) is not None
