"""Commits on releases: Sentry's serializers for `commits`, `refs` and `headCommits`
(api/serializers/rest_framework/commit.py, release.py), field by field with DRF's messages,
and the JSON of repositories, commits and file changes (api/serializers/models/*.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .fields import FIELD_NOT_STRING, FIELD_NULL, FIELD_NULL_CHARACTERS, datetime_field, string_field

# CommitSerializer (rest_framework/commit.py): id ≤ 64, repository ≤ 64, author_name ≤ 128,
# author_email ≤ 200 characters; CommitPatchSetSerializer: path ≤ 510, type ≤ 1.
MAX_COMMIT_ID_LENGTH = 64
MAX_COMMIT_REPOSITORY_LENGTH = 64
MAX_AUTHOR_NAME_LENGTH = 128
MAX_AUTHOR_EMAIL_LENGTH = 200
MAX_PATCH_PATH_LENGTH = 510
# ReleaseHeadCommitSerializer: repository ≤ 200; MAX_COMMIT_LENGTH (constants.py) for each
# side of a ref; the deprecated headCommits' repository ≤ 64.
MAX_REF_REPOSITORY_LENGTH = 200
MAX_COMMIT_LENGTH = 64
MAX_HEAD_COMMIT_REPOSITORY_LENGTH = 64
# COMMIT_RANGE_DELIMITER (constants.py).
COMMIT_RANGE_DELIMITER = ".."
# CommitFileChange.is_valid_type (models/commitfilechange.py).
PATCH_TYPES = frozenset("AMD")
# create_commit_authors (releases/set_commits.py) truncates an author's email to 75 characters.
MAX_STORED_AUTHOR_EMAIL = 75
# RepositoryProvider.should_ignore_commit (plugins/providers/repository.py).
SKIP_MARKER = "#skipsentry"


@dataclass(frozen=True, slots=True)
class CommitData:
    """One entry of a release's `commits`, validated."""

    id: str
    repository: str | None
    message: str | None
    author_name: str | None
    author_email: str | None
    timestamp: datetime | None
    patch_set: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RefData:
    """One head commit: `refs` entries, or deprecated `headCommits` turned into them."""

    repository: str
    commit: str
    previous_commit: str | None


@dataclass(frozen=True, slots=True)
class CommitFields:
    """What a release create or update says about commits; None: the key was not given."""

    commits: list[CommitData] | None = None
    refs: list[RefData] | None = None
    head_commits: list[RefData] | None = None


def _list_field(data: dict[str, Any], key: str, errors: dict[str, Any]) -> list[Any] | None:
    """DRF ListField(required=False, allow_null=False)."""
    if key not in data:
        return None
    value = data[key]
    if value is None:
        errors[key] = [FIELD_NULL]
        return None
    if isinstance(value, str) or not isinstance(value, list):
        errors[key] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return None
    return value


def _optional_char(item: dict[str, Any], key: str, errors: dict[str, Any], max_length: int | None = None) -> str | None:
    """DRF CharField(required=False, allow_null=True, allow_blank=True), whitespace trimmed
    as DRF does by default; absent and null are None."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[key] = [FIELD_NOT_STRING]
        return None
    text = str(value).strip()
    if max_length is not None and len(text) > max_length:
        errors[key] = [f"Ensure this field has no more than {max_length} characters."]
        return None
    if "\x00" in text:
        errors[key] = [FIELD_NULL_CHARACTERS]
        return None
    return text


def _child(value: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "NoneType"
        return None, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}
    return value, {}


def _commit(value: Any) -> tuple[CommitData | None, dict[str, Any]]:
    item, errors = _child(value)
    if item is None:
        return None, errors
    commit_id = string_field(item, "id", errors, max_length=MAX_COMMIT_ID_LENGTH, trim=True)
    repository = _optional_char(item, "repository", errors, MAX_COMMIT_REPOSITORY_LENGTH)
    message = _optional_char(item, "message", errors)
    name = _optional_char(item, "author_name", errors, MAX_AUTHOR_NAME_LENGTH)
    email = _optional_char(item, "author_email", errors, MAX_AUTHOR_EMAIL_LENGTH)
    timestamp = datetime_field(item, "timestamp", errors)
    patches: list[tuple[str, str]] = []
    patch_set = item.get("patch_set")
    if patch_set is not None:
        if isinstance(patch_set, str) or not isinstance(patch_set, list):
            errors["patch_set"] = [f'Expected a list of items but got type "{type(patch_set).__name__}".']
        else:
            patch_errors: dict[str, Any] = {}
            for index, entry in enumerate(patch_set):
                if entry is None:
                    patch_errors[str(index)] = [FIELD_NULL]
                    continue
                patch, entry_errors = _child(entry)
                if patch is not None:
                    path = string_field(patch, "path", entry_errors, max_length=MAX_PATCH_PATH_LENGTH, trim=True)
                    kind = string_field(patch, "type", entry_errors, max_length=1, trim=True)
                    if kind is not None and kind not in PATCH_TYPES:
                        entry_errors["type"] = [f"Commit patch_set type {kind} is not supported."]
                    if path is not None and not entry_errors:
                        assert kind is not None
                        patches.append((path, kind))
                if entry_errors:
                    patch_errors[str(index)] = entry_errors
            if patch_errors:
                errors["patch_set"] = patch_errors
    if errors or commit_id is None:
        return None, errors
    return CommitData(
        id=commit_id,
        repository=repository,
        message=message,
        author_name=name,
        author_email=email,
        timestamp=timestamp,
        patch_set=tuple(patches),
    ), {}


def _ref_commit(value: str, errors: dict[str, list[str]]) -> None:
    """ReleaseHeadCommitSerializer.validate_commit: one sha or a `previous..commit` range."""
    if COMMIT_RANGE_DELIMITER in value:
        parts = value.split(COMMIT_RANGE_DELIMITER)
        if len(parts) == 2 and (not parts[0] or not parts[1]):
            errors["commit"] = [f"Commit cannot begin or end with {COMMIT_RANGE_DELIMITER}"]
        elif len(parts) == 2 and (len(parts[0]) > MAX_COMMIT_LENGTH or len(parts[1]) > MAX_COMMIT_LENGTH):
            errors["commit"] = [f"Start or end commit too long - max is {MAX_COMMIT_LENGTH} chars each"]
        elif len(parts) != 2:
            # Sentry's unpacking of str.split raises here; a 400 is the closest non-5xx answer.
            errors["commit"] = [f"Commit cannot begin or end with {COMMIT_RANGE_DELIMITER}"]
    elif len(value) > MAX_COMMIT_LENGTH:
        errors["commit"] = [f"Commit too long - max is {MAX_COMMIT_LENGTH} chars"]


def _ref(value: Any) -> tuple[RefData | None, dict[str, Any]]:
    item, errors = _child(value)
    if item is None:
        return None, errors
    commit = string_field(item, "commit", errors, trim=True)
    if commit is not None:
        _ref_commit(commit, errors)
    repository = string_field(item, "repository", errors, max_length=MAX_REF_REPOSITORY_LENGTH, trim=True)
    previous = _optional_char(item, "previousCommit", errors, MAX_COMMIT_LENGTH) or None
    if errors or commit is None or repository is None:
        return None, errors
    if COMMIT_RANGE_DELIMITER in commit:
        # Release.handle_commit_ranges: a range overrides previousCommit.
        previous, commit = commit.split(COMMIT_RANGE_DELIMITER)
    return RefData(repository=repository, commit=commit, previous_commit=previous), {}


def _head_commit(value: Any) -> tuple[RefData | None, dict[str, Any]]:
    """ReleaseHeadCommitSerializerDeprecated: currentId, repository, previousId."""
    item, errors = _child(value)
    if item is None:
        return None, errors
    current = string_field(item, "currentId", errors, max_length=MAX_COMMIT_LENGTH, trim=True)
    repository = string_field(item, "repository", errors, max_length=MAX_HEAD_COMMIT_REPOSITORY_LENGTH, trim=True)
    previous = None
    if item.get("previousId") is not None:
        previous = string_field(item, "previousId", errors, max_length=MAX_COMMIT_LENGTH, trim=True)
    if errors or current is None or repository is None:
        return None, errors
    return RefData(repository=repository, commit=current, previous_commit=previous), {}


def _items(data: dict[str, Any], key: str, errors: dict[str, Any], parse: Any) -> list[Any] | None:
    values = _list_field(data, key, errors)
    if values is None:
        return None
    parsed: list[Any] = []
    child_errors: dict[str, Any] = {}
    for index, value in enumerate(values):
        if value is None:
            # A child serializer refuses null before it looks at the value (DRF's run_validation).
            child_errors[str(index)] = [FIELD_NULL]
            continue
        item, item_errors = parse(value)
        if item_errors:
            child_errors[str(index)] = item_errors
        else:
            parsed.append(item)
    if child_errors:
        # DRF's ListField reports its children's errors by index.
        errors[key] = child_errors
        return None
    return parsed


def validate_commit_fields(data: dict[str, Any], errors: dict[str, Any], *, with_refs: bool = True) -> CommitFields:
    """The `commits`, `refs` and `headCommits` of a release body; errors go into `errors`
    (`with_refs` False: the project endpoints, whose serializer has only `commits`)."""
    commits = _items(data, "commits", errors, _commit)
    if not with_refs:
        return CommitFields(commits=commits)
    refs = _items(data, "refs", errors, _ref)
    head_commits = _items(data, "headCommits", errors, _head_commit)
    return CommitFields(commits=commits, refs=refs, head_commits=head_commits)


def author_email(commit: CommitData) -> str | None:
    """create_commit_authors (releases/set_commits.py): a name without an email becomes
    `<name's safe characters, lowercased>@localhost`; at most 75 characters are kept."""
    email = commit.author_email
    if email is None and commit.author_name:
        email = re.sub(r"[^a-zA-Z0-9\-_\.]*", "", commit.author_name).lower() + "@localhost"
    if not email:
        return None
    # utils/strings.py truncatechars: a longer value ends in "..." within the limit.
    return email if len(email) <= MAX_STORED_AUTHOR_EMAIL else email[: MAX_STORED_AUTHOR_EMAIL - 3] + "..."


def should_ignore_commit(commit: CommitData) -> bool:
    return SKIP_MARKER in (commit.message or "")


def invalid_repositories(names: set[str]) -> str:
    """InvalidRepository's text in Release.set_refs (models/release.py)."""
    return f"Invalid repository names: {','.join(sorted(names))}"
