"""What a SQL engine gives the repositories: a `Db` that runs statements in the current
transaction, and a `Dialect` with the few spellings that differ between engines.

Repositories write each statement once, with named parameters (`:name`) and these hooks; an
engine renders them for its driver. SQLite needs no rendering (named parameters are its own);
another engine rewrites `:name` once per statement text and caches the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

# A row as the repositories read it: by column name, never by position.
Row = Mapping[str, Any]
Params = Mapping[str, Any]


# An engine's index for the release-file name search: given the casefolded terms, the FROM
# source that yields the matching `release_files` rows and its parameters, or None when this
# search cannot use the index (the repository then scans with `contains`).
NameSearch = Callable[[Sequence[str]], "tuple[str, dict[str, Any]] | None"]


class UniqueViolation(Exception):
    """A statement broke a unique constraint (each engine maps its driver's error to this)."""


class ReferenceGone(Exception):
    """A row referenced one that another transaction deleted meanwhile (a foreign key broke)."""


class UnstorableText(ValueError):
    """A value this engine cannot store: PostgreSQL's text cannot hold NUL."""


class Db(Protocol):
    """One transaction's statements. Each call is one hop to the driver."""

    dialect: Dialect

    async def rows(self, sql: str, params: Params | None = None) -> list[Row]: ...

    async def row(self, sql: str, params: Params | None = None) -> Row | None: ...

    async def run(self, sql: str, params: Params | None = None) -> int:
        """Execute; the number of rows changed."""
        ...

    async def run_many(self, sql: str, params: Iterable[Params]) -> None:
        """Execute once per parameter set; an iterator is consumed lazily, so a large batch
        never exists as a list of parameter sets."""
        ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """The spelling differences a second SQL engine needs, and nothing else."""

    name: str
    # Null-safe equality: SQLite's `IS` (its `IS NOT DISTINCT FROM` needs 3.39, newer than
    # some distributions' SQLite); the standard `IS NOT DISTINCT FROM` elsewhere.
    null_safe_eq: str
    # A substring test: SQLite's instr() or PostgreSQL's strpos(), both 1-based and 0 if absent.
    find_function: str
    # How many values one list parameter may carry: SQLite's host-parameter limit was 999
    # before 3.32, so lists go in batches of 500; an engine with array parameters has no limit.
    max_list: int
    # True: a list is one array parameter (`= ANY(:name)`); False: one parameter per value.
    array_params: bool
    # Case-insensitive LIKE, as Django's `icontains` is: SQLite's LIKE already folds ASCII,
    # PostgreSQL's does not.
    like: str = "LIKE"
    # Whether a text value may contain NUL (SQLite's may; PostgreSQL's text cannot).
    text_holds_nul: bool = True
    # Appended to a SELECT that claims rows for this transaction: PostgreSQL locks them and
    # skips rows another transaction holds; SQLite's single writer needs nothing.
    skip_locked: str = ""
    # Appended to a SELECT of rows this transaction goes on to reference (add rows under):
    # PostgreSQL keeps another transaction from deleting them, and so the rows under them,
    # until this one ends, where a lock-free write runs beside deletes; SQLite's single writer
    # needs nothing.
    keep_referenced: str = ""
    name_search: NameSearch | None = None

    def contains(self, haystack: str, needle: str) -> str:
        """SQL true when the text `needle` occurs in `haystack` (both SQL expressions)."""
        return f"{self.find_function}({haystack}, {needle}) > 0"

    def in_list(self, column: str, name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """`column` is one of `values` (at most `max_list` of them): SQL and its parameters."""
        if self.array_params:
            return f"{column} = ANY(:{name})", {name: list(values)}
        names = [f"{name}_{i}" for i in range(len(values))]
        if not names:
            return "0 = 1", {}
        return f"{column} IN ({', '.join(':' + n for n in names)})", dict(zip(names, values, strict=True))

    def batches(self, values: Iterable[Any]) -> list[list[Any]]:
        """Distinct `values`, in order, cut into lists `in_list` accepts."""
        wanted = list(dict.fromkeys(values))
        return [wanted[i : i + self.max_list] for i in range(0, len(wanted), self.max_list)]


# Values as the catalog keeps them: timestamps as UTC ISO-8601 text with microseconds (they
# sort as text and as time alike), headers and requests as JSON text.
def ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="microseconds") if value else None


def dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def dt_required(value: str) -> datetime:
    return datetime.fromisoformat(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_json(value: Any) -> str:
    return json.dumps(value)


def from_json(value: str) -> Any:
    return json.loads(value)


def storable_terms(dialect: Dialect, terms: Sequence[str]) -> list[str] | None:
    """Search terms that could occur in stored text, or None when none could.

    Where text cannot hold NUL (PostgreSQL), a term holding one matches nothing and is
    dropped; when every term is, nothing matches at all. SQLite keeps NUL in names."""
    if dialect.text_holds_nul:
        return list(terms)
    kept = [t for t in terms if "\x00" not in t]
    return kept if kept or not terms else None


def columns(alias: str, names: Sequence[str], prefix: str = "") -> str:
    """`alias.col AS prefixcol, …`: the select list of a table read under a prefix."""
    return ", ".join(f"{alias}.{n} AS {prefix}{n}" for n in names)
