"""Release versions as Sentry parses them: `package@version+build` (sentry-release-parser via
Release's manager, models/release.py), the semver columns it stores, and the filters the
release search builds from them (search/events/filter.py parse_semver)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import SemverColumns

# sentry-release-parser's version grammar: up to four numeric components (major, minor,
# patch, revision), a pre-release after `-`, a build code after `+`.
SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:\.(?P<revision>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)

# sentry-release-parser: a build hash is hex of one of these lengths.
_HASH_LENGTHS = frozenset((12, 16, 20, 32, 40, 64))

# validate_bigint (utils/db.py): the semver columns are 64-bit.
MAX_BIGINT = 2**63 - 1
# Its digits: a longer decimal is over it, told without int(), which refuses over 4 300 digits.
MAX_BIGINT_DIGITS = len(str(MAX_BIGINT))

# SEMVER_FAKE_PACKAGE (search/events/constants.py): what parse_semver puts before a bare version.
SEMVER_FAKE_PACKAGE = "__sentry_fake__"
# SEMVER_WILDCARDS (search/events/constants.py).
SEMVER_WILDCARDS = frozenset(("X", "*"))
INVALID_SEMVER_MESSAGE = (
    'Invalid format of semantic version. For searching non-semver releases, use "release:" instead.'
)
INVALID_SEMVER_OPERATION = "Invalid operation 'IN' for semantic version filter."


class InvalidSearchQuery(ValueError):
    """Sentry's InvalidSearchQuery: its text is the 400's `detail`."""


def build_hash(value: str | None) -> str | None:
    if value and len(value) in _HASH_LENGTHS and re.fullmatch(r"[0-9a-fA-F]+", value):
        return value.lower()
    return None


def split_package(version: str) -> tuple[str | None, str]:
    """`package@rest`, or no package: the parser's release regex `^(@?[^@]+)@(.*?)$`."""
    match = re.match(r"^(@?[^@]+)@(.*?)$", version, re.DOTALL)
    if match is None or not match.group(2):
        return None, version
    return match.group(1), match.group(2)


def parse_version(version: str) -> tuple[str | None, re.Match[str] | None]:
    """The package and, when the rest is a version (not a build hash), its parts."""
    package, rest = split_package(version)
    if package is None or build_hash(rest):
        return package, None
    return package, SEMVER.match(rest)


def _number(text: str | None) -> int:
    """A version part's value; one longer than MAX_BIGINT_DIGITS counts as MAX_BIGINT + 1."""
    if text is None:
        return 0
    return MAX_BIGINT + 1 if len(text) > MAX_BIGINT_DIGITS else int(text)


def semver_columns(version: str) -> SemverColumns:
    """What Release's manager stores for a version: all None unless it is `package@semver`
    whose numbers fit the columns (Release.is_semver_version)."""
    package, match = parse_version(version)
    if match is None:
        return SemverColumns()
    parts = [_number(match.group(g)) for g in ("major", "minor", "patch", "revision")]
    if any(p > MAX_BIGINT for p in parts):
        return SemverColumns()
    build = match.group("build")
    # ReleaseQuerySet._convert_build_code_to_build_number: a decimal build that fits a bigint.
    number = int(build) if build and build.isdecimal() and build.isascii() and int(build) <= MAX_BIGINT else None
    return SemverColumns(
        package=package,
        major=parts[0],
        minor=parts[1],
        patch=parts[2],
        revision=parts[3],
        prerelease=match.group("pre") or "",
        build_code=build,
        build_number=number,
        parsed=True,
    )


@dataclass(frozen=True, slots=True)
class SemverFilter:
    """SemverFilter (releases/util.py): compare (major, minor, patch, revision,
    prerelease-case, prerelease), or its first len(parts) columns for "exact"."""

    operator: str  # "exact", "gt", "gte", "lt", "lte"
    parts: tuple[int | str, ...]
    package: str | None
    negated: bool


# OPERATOR_TO_DJANGO (search/events/constants.py).
OPERATOR_TO_DJANGO = {"=": "exact", "<=": "lte", ">=": "gte", "<": "lt", ">": "gt"}


def negation(operator: str) -> tuple[str, bool]:
    """handle_operator_negation (search/events/filter.py)."""
    return ("=", True) if operator == "!=" else (operator, False)


def parse_semver(value: str, operator: str) -> SemverFilter:
    """parse_semver (search/events/filter.py): a full version compares; otherwise `1.2.*`
    style prefixes match exactly on the numbers given."""
    operator, negated = negation(operator)
    if operator not in OPERATOR_TO_DJANGO:
        raise InvalidSearchQuery(INVALID_SEMVER_OPERATION)
    django_op = OPERATOR_TO_DJANGO[operator]
    full = value if "@" in value else f"{SEMVER_FAKE_PACKAGE}@{value}"
    package, match = parse_version(full)
    if match is not None:
        pre = match.group("pre") or ""
        if any(_number(match.group(g)) > MAX_BIGINT for g in ("major", "minor", "patch", "revision")):
            # No stored version holds such a number (the columns are 64-bit): say so, rather
            # than hand the database a number it cannot take.
            raise InvalidSearchQuery(INVALID_SEMVER_MESSAGE)
        parts: tuple[int | str, ...] = (
            *(_number(match.group(g)) for g in ("major", "minor", "patch", "revision")),
            0 if pre else 1,
            pre,
        )
        real_package = package if package and package != SEMVER_FAKE_PACKAGE else None
        return SemverFilter(django_op, parts, real_package, negated)
    package, _, version = full.partition("@")
    numbers: list[int] = []
    if version:
        for part in version.split(".", 3):
            if part in SEMVER_WILDCARDS:
                break
            if not part.isdecimal() or not part.isascii() or _number(part) > MAX_BIGINT:
                raise InvalidSearchQuery(INVALID_SEMVER_MESSAGE)
            numbers.append(int(part))
    real_package = package if package and package != SEMVER_FAKE_PACKAGE else None
    return SemverFilter("exact", tuple(numbers), real_package, negated)
