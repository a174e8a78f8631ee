"""Everything that exists only to match Sentry's wire format. Pure functions: no I/O.

Each rule names the Sentry source it reproduces; the facts are collected in the project's
Sentry API notes (release files, releases, auth).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema

from .errors import BadRequest
from .models import ArtifactBundle, BundleFile, Deploy, Organization, Project, ReleaseFile, ReleaseView

# --- messages clients compare byte for byte -------------------------------------------------

# releases/endpoints/project_release_files.py (newest), in the order the endpoint checks them.
MISSING_FILE = "Missing uploaded file"
NAME_REQUIRED = "File name must be specified"
NAME_SPECIAL_WHITESPACE = "File name must not contain special whitespace characters"
HEADER_FORMAT = "header value was not formatted correctly"
HEADER_SPECIAL_WHITESPACE = "header value must not contain special whitespace characters"
FILE_EXISTS = "A file matching this name already exists for the given release"

# DRF field error messages (rest_framework/fields.py), used by Sentry's serializers.
FIELD_REQUIRED = "This field is required."
FIELD_BLANK = "This field may not be blank."
FIELD_NULL = "This field may not be null."
FIELD_NOT_STRING = "Not a valid string."

# Sentry's release version length (models/release.py DB_VERSION_LENGTH).
MAX_VERSION_LENGTH = 200
# Sentry's Distribution.name is a CharField(max_length=64) (models/distribution.py).
MAX_DIST_LENGTH = 64

# Sentry's `_filename_re` (project_release_files.py): special whitespace and backslash.
_SPECIAL_WHITESPACE = re.compile(r"[\n\t\r\f\v\\]")
# Sentry's BAD_RELEASE_CHARS (constants.py): "\r\n\f\x0c\t/\\".
_BAD_RELEASE_CHARS = frozenset("\r\n\f\x0c\t/\\")


def format_datetime(value: datetime) -> str:
    """ISO 8601 with six fractional digits and `Z`, the form every Sentry era's clients parse."""
    # isoformat pads the year to four digits; strftime's %Y does not on glibc (year 450 → "450").
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def release_file_ident(name: str, dist: str | None) -> str:
    """Sentry's ReleaseFile.ident: sha1 of the name, with `\\0\\0dist` appended when there is one."""
    # models/releasefile.py: ReleaseFile.get_ident
    if dist:
        name = f"{name}\x00\x00{dist}"
    return hashlib.sha1(name.encode("utf-8")).hexdigest()  # noqa: S324 -- Sentry's ident, not security


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def first_surrogate(value: Any) -> int | None:
    """The first lone surrogate in a parsed JSON value (strings at any depth, keys too), or None.

    `json.loads` turns `"\\ud800"` into a lone surrogate, which no database can store and no
    response can encode; DRF's string fields refuse them, so relserver refuses them in any field.
    """
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return ord(found.group()) if found else None
    if isinstance(value, dict):
        items: Iterable[Any] = (part for pair in value.items() for part in pair)
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        code_point = first_surrogate(item)
        if code_point is not None:
            return code_point
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


# ReleaseFileSerializer.name: CharField(max_length=200) (project_release_file_details.py).
MAX_RENAME_LENGTH = 200


def validate_rename(data: dict[str, Any]) -> str:
    errors: dict[str, list[str]] = {}
    name = string_field(data, "name", errors, max_length=MAX_RENAME_LENGTH, trim=True)
    if name is None:
        raise BadRequest(errors)
    return name


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


# --- JSON shapes ----------------------------------------------------------------------------


def release_file_json(rf: ReleaseFile) -> dict[str, Any]:
    """The seven keys of Sentry's ReleaseFileSerializer; `id` is a string in every era."""
    return {
        "id": str(rf.id),
        "name": rf.name,
        "dist": rf.dist,
        "headers": rf.headers,
        "size": rf.size,
        "sha1": rf.sha1,
        "dateCreated": format_datetime(rf.date_created),
    }


_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
# sentry-release-parser: a build hash is hex of one of these lengths.
_HASH_LENGTHS = frozenset((12, 16, 20, 32, 40, 64))


def _build_hash(value: str | None) -> str | None:
    if value and len(value) in _HASH_LENGTHS and re.fullmatch(r"[0-9a-fA-F]+", value):
        return value.lower()
    return None


def version_info(version: str) -> dict[str, Any] | None:
    """Sentry's expose_version_info over sentry-release-parser (`package@version+build`)."""
    if not is_valid_version(version):
        return None
    package, at, rest = version.partition("@")
    match = _SEMVER.match(rest) if at and package and rest and not _build_hash(rest) else None
    if match is None:
        # Not `package@semver`: the raw string, and a hash if the version part is one.
        build_hash = _build_hash(rest if at else version)
        return {
            "package": package if at and package else None,
            "version": {"raw": rest if at and package else version},
            "description": build_hash[:12] if build_hash else version,
            "buildHash": build_hash,
        }
    build = match.group("build")
    build_hash = _build_hash(build)
    label = build_hash[:12] if build_hash else build
    base = rest.split("+", 1)[0]
    return {
        "package": package,
        "version": {
            "raw": rest,
            "major": int(match.group("major")),
            "minor": int(match.group("minor") or 0),
            "patch": int(match.group("patch") or 0),
            "pre": match.group("pre"),
            "buildCode": build,
            "components": sum(match.group(g) is not None for g in ("major", "minor", "patch")),
        },
        "description": f"{base} ({label})" if label else base,
        "buildHash": build_hash,
    }


def project_json(project: Project) -> dict[str, Any]:
    """An entry of a release's `projects` list (api/serializers/models/release.py)."""
    return {
        "id": project.id,
        "slug": project.slug,
        "name": project.name,
        "newGroups": 0,
        "platform": project.platform,
        "platforms": [project.platform] if project.platform else [],
        "hasHealthData": False,
    }


def release_json(view: ReleaseView) -> dict[str, Any]:
    """Sentry's release JSON (api/serializers/models/release.py): projects and deploys as
    stored; commits, issues and events, which relserver does not track, as Sentry shows a
    release without them."""
    release = view.release
    return {
        "id": release.id,
        "version": release.version,
        "status": release.status,
        "shortVersion": release.version,
        "versionInfo": version_info(release.version),
        "ref": release.ref,
        "url": release.url,
        "dateReleased": format_datetime(release.date_released) if release.date_released else None,
        "dateCreated": format_datetime(release.date_created),
        "data": {},
        "newGroups": 0,
        "owner": None,
        "commitCount": 0,
        "lastCommit": None,
        "deployCount": view.deploy_count,
        "lastDeploy": deploy_json(view.last_deploy) if view.last_deploy else None,
        "authors": [],
        "projects": [project_json(p) for p in view.projects],
        "firstEvent": None,
        "lastEvent": None,
        "currentProjectMeta": {},
        "userAgent": release.user_agent,
    }


# --- text from the wire ---------------------------------------------------------------------


def header_text(value: str) -> str:
    """A header value as Django reads it: bytes as latin-1 (WSGI's rule, PEP 3333).

    aiohttp decodes header bytes as UTF-8 and keeps undecodable ones as lone surrogates,
    which no database stores and no response encodes; those values are read as latin-1.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value


def has_undecodable_bytes(value: str) -> bool:
    """True for a header value that held bytes which are not UTF-8 (see `header_text`)."""
    return not value.isascii() and header_text(value) != value


def without_surrogates(text: str) -> str:
    """Text decoded from a client's bytes, with any lone surrogate (utf-7 and the escape codecs
    make them) replaced by U+FFFD, as a strict decoder with errors="replace" would."""
    return _SURROGATE.sub("\ufffd", text)


# --- hosts and URLs -------------------------------------------------------------------------

# Django's host_validation_re (http/request.py): a name or a bracketed IPv6 address, then a port.
_HOST = re.compile(r"(?i)([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?")
INVALID_HOST = "Invalid HTTP_HOST header."


def is_valid_host(host: str) -> bool:
    return _HOST.fullmatch(host) is not None


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


# --- slugs ----------------------------------------------------------------------------------

# slug/patterns.py: ORG_SLUG_PATTERN and MIXED_SLUG_PATTERN; db/models/fields/slug.py: 50 chars.
_ORG_SLUG = re.compile(r"(?![0-9]+$)[a-zA-Z0-9][a-zA-Z0-9-]*(?<!-)")
_PROJECT_SLUG = re.compile(r"(?![0-9]+$)[a-z0-9_\-]+")
MAX_SLUG_LENGTH = 50


def is_valid_org_slug(slug: str) -> bool:
    return len(slug) <= MAX_SLUG_LENGTH and _ORG_SLUG.fullmatch(slug) is not None


def is_valid_project_slug(slug: str) -> bool:
    return len(slug) <= MAX_SLUG_LENGTH and _PROJECT_SLUG.fullmatch(slug) is not None


# --- project filters (api/bases/organization.py) --------------------------------------------

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


# --- pagination (api/paginator.py ChainPaginator, utils/cursors.py, api/base.py) ------------

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


# --- release file ids and downloads ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveEntryId:
    """A base64 id naming an entry of an artifact bundle: (dist or None, url)."""

    dist: str | None
    url: str


def encode_archive_entry_id(dist: str | None, url: str) -> str:
    """URL-safe base64, padding kept, of "<dist>_<url>" (api/serializers/models/release_file.py)."""
    return base64.urlsafe_b64encode(f"{dist or ''}_{url}".encode()).decode("ascii")


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


def download_content_type(headers: dict[str, str]) -> str:
    """Sentry looks up the exact lowercase key, so an upload's `Content-Type` does not count."""
    return headers.get("content-type", "application/octet-stream")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def content_disposition(name: str) -> str:
    """`attachment; filename="<basename>"` after collapsing whitespace (project_release_file_details.py)."""
    basename = " ".join(name.split()).rsplit("/", 1)[-1]
    # Sentry leaves quotes alone; control characters cannot go into an HTTP header at all.
    return f'attachment; filename="{_CONTROL.sub("", basename)}"'


def archive_entry_json(entry: BundleFile) -> dict[str, Any]:
    """A bundle member in a release's file list: Sentry's release-archive entry shape (project_release_files.py)."""
    return {
        "id": encode_archive_entry_id(entry.dist, entry.url),
        "name": entry.url,
        "dist": entry.dist,
        "headers": entry.headers,
        "size": entry.size,
        "sha1": entry.sha1,
        "dateCreated": format_datetime(entry.date_created),
    }


# --- assemble bodies (organization_release_assemble.py, organization_artifactbundle_assemble.py) ----

_SHA1_PATTERN = "^[0-9a-f]{40}$"
RELEASE_ASSEMBLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "checksum": {"type": "string", "pattern": _SHA1_PATTERN},
        "chunks": {"type": "array", "items": {"type": "string", "pattern": _SHA1_PATTERN}},
    },
    "required": ["checksum", "chunks"],
    "additionalProperties": False,
}
ARTIFACT_BUNDLE_ASSEMBLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "version": {"type": "string", "pattern": "^[^/]+$"},
        "dist": {"type": "string"},
        "projects": {"type": "array", "items": {"type": "string"}},
        "checksum": {"type": "string", "pattern": _SHA1_PATTERN},
        "chunks": {"type": "array", "items": {"type": "string", "pattern": _SHA1_PATTERN}},
    },
    "required": ["checksum", "chunks", "projects"],
    "additionalProperties": False,
}
# The newest artifact-bundle endpoint words errors per field; others keep the validator's text.
ARTIFACT_BUNDLE_FIELD_ERRORS = {
    "version": 'The version field cannot be empty and cannot contain any "/" characters.',
    "dist": "The dist field must be a string.",
    "projects": "The projects field is required and must be provided as an array of strings.",
    "checksum": "The checksum field is required and must be a 40-character hexadecimal string.",
    "chunks": "The chunks field is required and must be provided as an array of 40-character hexadecimal strings.",
}


def validate_assemble_body(raw: bytes, schema: dict[str, Any], field_errors: dict[str, str] | None = None) -> Any:
    """Parse and check an assemble body; errors are `{"error": …}` 400s as Sentry words them."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest({"error": "Invalid json body"}) from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(data))
    if error is not None:
        field = error.path[0] if error.path else None
        if field_errors and isinstance(field, str) and field in field_errors:
            message = field_errors[field]
        else:
            message = str(error.message).splitlines()[0]
        raise BadRequest({"error": message})
    for key, value in data.items():
        code_point = first_surrogate(value)
        if code_point is not None:
            # The schema lets lone surrogates through; no database could store them.
            known = field_errors.get(key) if field_errors else None
            raise BadRequest({"error": known or surrogate_error(code_point)})
    return data


# --- artifact bundles as their own resource (api/serializers/models/artifactbundle.py) ------


def _second_precision(value: datetime) -> str:
    """These serializers cut ISO dates to seconds and add `Z`."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def bundle_associations(bundle: ArtifactBundle) -> list[dict[str, Any]]:
    return [{"release": bundle.release, "dist": bundle.dist}] if bundle.release else []


def artifact_bundle_json(bundle: ArtifactBundle) -> dict[str, Any]:
    return {
        "bundleId": bundle.bundle_id,
        "associations": bundle_associations(bundle),
        "fileCount": bundle.file_count,
        "dateModified": _second_precision(bundle.date_modified),
        "date": _second_precision(bundle.date_created),
    }


def bundle_file_json(entry: BundleFile) -> dict[str, Any]:
    """ArtifactBundleFilesSerializer: ids are URL-safe base64 of the path inside the zip."""
    sourcemap = next((v for k, v in entry.headers.items() if k.lower() == "sourcemap"), None)
    return {
        "id": base64.urlsafe_b64encode(entry.path.encode()).decode("ascii"),
        "fileType": file_type_code(entry.file_type),
        "filePath": entry.url,
        "fileSize": entry.size,
        "debugId": entry.debug_id,
        "sourcemap": sourcemap,
    }


def file_type_code(file_type: str | None) -> int:
    """SourceFileType (models/artifactbundle.py): numbers in JSON, 0 when missing or unknown."""
    return {"source": 1, "minified_source": 2, "source_map": 3, "indexed_ram_bundle": 4}.get(file_type or "", 0)


def deploy_json(deploy: Deploy) -> dict[str, Any]:
    """api/serializers/models/deploy.py."""
    return {
        "id": str(deploy.id),
        "environment": deploy.environment,
        "dateStarted": format_datetime(deploy.date_started) if deploy.date_started else None,
        "dateFinished": format_datetime(deploy.date_finished),
        "name": deploy.name,
        "url": deploy.url,
    }


def organization_json(org: Organization, projects: Iterable[Project], origin: str) -> dict[str, Any]:
    """The base keys of OrganizationSerializer plus the detailed `projects` and `teams`."""
    return {
        "id": str(org.id),
        "slug": org.slug,
        "status": {"id": "active", "name": "active"},
        "name": org.name,
        "dateCreated": format_datetime(org.date_created),
        "isEarlyAdopter": False,
        "require2FA": False,
        "requireEmailVerification": False,
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None, "avatarUrl": None},
        "allowMemberInvite": True,
        "allowMemberProjectCreation": True,
        "allowSuperuserAccess": True,
        "links": {"organizationUrl": origin, "regionUrl": origin},
        "hasAuthProvider": False,
        "features": [],
        "teams": [],
        "projects": [
            {
                "id": str(p.id),
                "slug": p.slug,
                "name": p.name,
                "platform": p.platform,
                "dateCreated": format_datetime(p.date_created),
            }
            for p in projects
        ],
    }
