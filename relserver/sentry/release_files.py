"""Sentry's release-file rules: upload validation in its order, header fields, download headers
(releases/endpoints/project_release_files.py, project_release_file_details.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import BadRequest
from .fields import string_field

# releases/endpoints/project_release_files.py (newest), in the order the endpoint checks them.
MISSING_FILE = "Missing uploaded file"


NAME_REQUIRED = "File name must be specified"


NAME_SPECIAL_WHITESPACE = "File name must not contain special whitespace characters"


HEADER_FORMAT = "header value was not formatted correctly"


HEADER_SPECIAL_WHITESPACE = "header value must not contain special whitespace characters"


FILE_EXISTS = "A file matching this name already exists for the given release"


# Sentry's Distribution.name is a CharField(max_length=64) (models/distribution.py).
MAX_DIST_LENGTH = 64


# Sentry's `_filename_re` (project_release_files.py): special whitespace and backslash.
_SPECIAL_WHITESPACE = re.compile(r"[\n\t\r\f\v\\]")


def has_special_whitespace(value: str) -> bool:
    return _SPECIAL_WHITESPACE.search(value) is not None


def parse_header_fields(content_type: str, values: Iterable[str]) -> dict[str, str]:
    """Build the stored headers from the part's type and the repeated `header` fields.

    Sentry starts from {"Content-Type": <part type>}, then splits every value at the first
    colon, keeps the key as given and strips the value; a later key overwrites an earlier one
    in place (a dict update), so order of first appearance is kept.
    """
    headers = {"Content-Type": content_type}
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep:
            raise BadRequest(HEADER_FORMAT)
        if has_special_whitespace(value):
            raise BadRequest(HEADER_SPECIAL_WHITESPACE)
        headers[key] = value.strip()
    return headers


def validate_file_name(full_name: str) -> None:
    """Sentry's checks on a release file's name, in its order."""
    if not full_name or full_name == "file":
        raise BadRequest(NAME_REQUIRED)
    # Only the basename is checked (project_release_files.py), so a tab in the host passes.
    if has_special_whitespace(full_name.rsplit("/", 1)[-1]):
        raise BadRequest(NAME_SPECIAL_WHITESPACE)


def validate_dist(dist: str) -> None:
    """Sentry would fail with a 500 on a dist over 64 characters; we say why instead."""
    if len(dist) > MAX_DIST_LENGTH:
        raise BadRequest(f"dist must be at most {MAX_DIST_LENGTH} characters")


# ReleaseFileSerializer.name: CharField(max_length=200) (project_release_file_details.py).
MAX_RENAME_LENGTH = 200


def validate_rename(data: dict[str, Any]) -> str:
    errors: dict[str, list[str]] = {}
    name = string_field(data, "name", errors, max_length=MAX_RENAME_LENGTH, trim=True)
    if name is None:
        raise BadRequest(errors)
    return name


def download_content_type(headers: dict[str, str]) -> str:
    """Sentry looks up the exact lowercase key, so an upload's `Content-Type` does not count."""
    return headers.get("content-type", "application/octet-stream")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def content_disposition(name: str) -> str:
    """`attachment; filename="<basename>"` after collapsing whitespace (project_release_file_details.py)."""
    basename = " ".join(name.split()).rsplit("/", 1)[-1]
    # Sentry leaves quotes alone; control characters cannot go into an HTTP header at all.
    return f'attachment; filename="{_CONTROL.sub("", basename)}"'
