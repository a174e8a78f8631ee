"""A release search's conditions (models.ReleaseCondition) as SQL over `releases r`."""

from __future__ import annotations

from typing import Any

from ....models import ReleaseCondition
from ..dialect import Dialect, ts
from .commits import like_pattern

# Release.SEMVER_COLS' prerelease_case: a release without a pre-release sorts above one with.
PRERELEASE_CASE = "(CASE WHEN r.prerelease = '' THEN 1 ELSE 0 END)"
SEMVER_COLUMNS = ("r.major", "r.minor", "r.patch", "r.revision", PRERELEASE_CASE, "r.prerelease")
_COMPARE = {"exact": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _positive(dialect: Dialect, c: ReleaseCondition, p: str) -> tuple[str, dict[str, Any]]:
    if c.kind == "nothing":
        return "0 = 1", {}
    if c.kind == "contains":
        likes = [f"r.version {dialect.like} :{p}{i} ESCAPE '\\'" for i in range(len(c.values))]
        return "(" + " OR ".join(likes) + ")", {f"{p}{i}": like_pattern(v) for i, v in enumerate(c.values)}
    if c.kind == "version":
        (value, *_) = c.values or ("",)
        if c.operator == "in":
            return dialect.in_list("r.version", f"{p}in", c.values)
        sized = {f"{p}v": value, f"{p}n": len(value)}
        if c.operator == "prefix":
            return f"substr(r.version, 1, :{p}n) = :{p}v", sized
        if c.operator == "suffix":
            return f"(length(r.version) >= :{p}n AND substr(r.version, length(r.version) - :{p}n + 1) = :{p}v)", sized
        if c.operator == "infix":
            return dialect.contains("r.version", f":{p}v"), {f"{p}v": value}
        return f"r.version = :{p}v", {f"{p}v": value}
    if c.kind == "semver":
        tests: list[str] = []
        params: dict[str, Any] = {}
        if c.package is not None:
            tests.append(f"r.package = :{p}package")
            params[f"{p}package"] = c.package
        if c.parts:
            cols = SEMVER_COLUMNS[: len(c.parts)]
            names = [f":{p}s{i}" for i in range(len(c.parts))]
            tests.append(f"({', '.join(cols)}) {_COMPARE[c.operator]} ({', '.join(names)})")
            params.update({n[1:]: v for n, v in zip(names, c.parts, strict=True)})
            tests.append("r.major IS NOT NULL")
        return "(" + " AND ".join(tests or ["1 = 1"]) + ")", params
    if c.kind == "package":
        return f"r.package = :{p}package", {f"{p}package": c.package}
    if c.kind == "build_number":
        return f"r.build_number {_COMPARE[c.operator]} :{p}n", {f"{p}n": c.number}
    if c.kind == "build_code":
        (value, *_) = c.values or ("",)
        if c.operator == "prefix":
            return f"substr(r.build_code, 1, :{p}n) = :{p}b", {f"{p}b": value, f"{p}n": len(value)}
        return f"r.build_code = :{p}b", {f"{p}b": value}
    if c.kind == "finalized":
        return ("r.date_released IS NOT NULL" if c.flag else "r.date_released IS NULL"), {}
    if c.kind == "created":
        return f"r.date_created {_COMPARE[c.operator]} :{p}when", {f"{p}when": ts(c.when)}
    raise AssertionError(c.kind)


def condition_sql(dialect: Dialect, condition: ReleaseCondition, prefix: str) -> tuple[str, dict[str, Any]]:
    """SQL true for the releases the condition keeps, and its parameters (names start with
    `prefix`). A negated condition keeps the releases where the positive one is not true,
    so a release without the value (a NULL) is kept, as Django's exclude() keeps it."""
    sql, params = _positive(dialect, condition, prefix)
    if condition.negated:
        sql = f"(CASE WHEN {sql} THEN 1 ELSE 0 END) = 0"
    return sql, params
