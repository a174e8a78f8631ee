"""Identities and ids: the release-file ident, slugs, project filters, database ids and
artifact-bundle archive-entry ids."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import BadRequest


def release_file_ident(name: str, dist: str | None) -> str:
    """Sentry's ReleaseFile.ident: sha1 of the name, with `\\0\\0dist` appended when there is one."""
    # models/releasefile.py: ReleaseFile.get_ident
    if dist:
        name = f"{name}\x00\x00{dist}"
    return hashlib.sha1(name.encode("utf-8")).hexdigest()  # noqa: S324 -- Sentry's ident, not security


# slug/patterns.py: ORG_SLUG_PATTERN and MIXED_SLUG_PATTERN; db/models/fields/slug.py: 50 chars.
_ORG_SLUG = re.compile(r"(?![0-9]+$)[a-zA-Z0-9][a-zA-Z0-9-]*(?<!-)")


_PROJECT_SLUG = re.compile(r"(?![0-9]+$)[a-z0-9_\-]+")


MAX_SLUG_LENGTH = 50


def is_valid_org_slug(slug: str) -> bool:
    return len(slug) <= MAX_SLUG_LENGTH and _ORG_SLUG.fullmatch(slug) is not None


def is_valid_project_slug(slug: str) -> bool:
    return len(slug) <= MAX_SLUG_LENGTH and _PROJECT_SLUG.fullmatch(slug) is not None


# `project=-1` asks for every project the caller may see (ALL_ACCESS_PROJECTS).
ALL_ACCESS_PROJECTS = frozenset({-1})


INVALID_PROJECT_PARAMETER = "Invalid project parameter. Values must be numbers."


def parse_project_ids(values: Iterable[str]) -> set[int]:
    """The repeated `project` query parameter (get_requested_project_ids_unchecked)."""
    try:
        ids = {int(v) for v in values}
    except ValueError:
        raise BadRequest(INVALID_PROJECT_PARAMETER) from None
    # An id no database key can hold names no project; kept out of the query, still refused.
    return {i if abs(i) <= MAX_DATABASE_ID else 0 for i in ids}


@dataclass(frozen=True, slots=True)
class ArchiveEntryId:
    """A base64 id naming an entry of an artifact bundle: (dist or None, url)."""

    dist: str | None
    url: str


def encode_archive_entry_id(dist: str | None, url: str) -> str:
    """URL-safe base64, padding kept, of "<dist>_<url>" (api/serializers/models/release_file.py)."""
    return base64.urlsafe_b64encode(f"{dist or ''}_{url}".encode()).decode("ascii")


def encode_bundle_file_id(path: str) -> str:
    """An artifact bundle member's id: URL-safe base64 of its path inside the zip
    (ArtifactBundleFilesSerializer)."""
    return base64.urlsafe_b64encode(path.encode()).decode("ascii")


def decode_bundle_file_id(raw: str) -> str | None:
    """The zip path a bundle member's id names, or None when it does not decode."""
    try:
        return base64.urlsafe_b64decode(raw.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None


# Row ids are SQL's signed 64-bit integers (Sentry's BoundedBigAutoField has the same bound).
MAX_DATABASE_ID = 2**63 - 1


def parse_database_id(raw: str) -> int | None:
    """A row id as Django's int() reads it, or None when it cannot name a row (too large)."""
    try:
        number = int(raw)
    except ValueError:
        return None
    return number if abs(number) <= MAX_DATABASE_ID else None


def decode_file_id(raw: str) -> int | ArchiveEntryId | None:
    """Integer ids first, then base64 archive ids; None when neither decodes (a 404)."""
    try:
        int(raw)
    except ValueError:
        pass
    else:
        # An integer id is never read as base64; one too large for a key names nothing.
        return parse_database_id(raw)
    try:
        decoded = base64.urlsafe_b64decode(raw.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError):
        return None
    dist, sep, url = decoded.partition("_")
    if not sep:
        return None
    return ArchiveEntryId(dist=dist or None, url=url)
