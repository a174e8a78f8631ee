"""The release list's and details' query parameters besides `query`, checked as Sentry checks
them (releases/endpoints/organization_releases.py, organization_release_details.py,
api/utils.py get_date_range_from_params)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import BadRequest
from .fields import utc_datetime

# STATS_PERIODS (snuba/sessions.py), in its order: the error text lists them so.
STATS_PERIODS = ("1h", "24h", "1d", "48h", "2d", "7d", "14d", "30d", "90d")
# SESSION_SORTS (organization_releases.py): health sorts, which need flatten=1.
SESSION_SORTS = frozenset({"crash_free_sessions", "crash_free_users", "sessions", "users", "sessions_24h", "users_24h"})
# "adoption" orders by session adoption, which relserver has none of: it keeps date order.
LIST_SORTS = frozenset({"date", "build", "semver", "adoption"})
INVALID_SORT = "invalid sort"
NEEDS_FLATTEN = "sorting by crash statistics requires flattening (flatten=1)"
# parse_stats_period (utils/dates.py): a number and an optional unit.
_STATS_PERIOD = re.compile(r"^(\d+)([hdmsw]?)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "seconds"}


def _period_detail(key: str) -> str:
    """get_stats_period_detail."""
    return f"Invalid {key}. Valid choices are {', '.join(repr(p) for p in STATS_PERIODS)}"


@dataclass(frozen=True, slots=True)
class ListParams:
    with_health: bool
    with_adoption_stages: bool
    start: datetime | None
    end: datetime | None


def check_health_params(get: dict[str, str], *, check_stat: bool) -> bool:
    """summaryStatsPeriod, healthStatsPeriod (and on the list healthStat); whether health=1."""
    with_health = get.get("health") == "1"
    summary = get.get("summaryStatsPeriod") or "14d"
    health_period = get.get("healthStatsPeriod") or ("24h" if with_health else "")
    if summary not in STATS_PERIODS:
        raise BadRequest(_period_detail("summaryStatsPeriod"))
    if health_period and health_period not in STATS_PERIODS:
        raise BadRequest(_period_detail("healthStatsPeriod"))
    if check_stat and (get.get("healthStat") or "sessions") not in ("sessions", "users"):
        raise BadRequest("invalid healthStat")
    return with_health


def _stats_period(value: str, now: datetime) -> datetime:
    match = _STATS_PERIOD.match(value)
    if match is None:
        raise BadRequest(f"Invalid date range: Invalid statsPeriod: {value!r}")
    try:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except (OverflowError, ValueError):  # ValueError: more digits than int() takes
        raise BadRequest(f"Invalid date range: Invalid statsPeriod: {value!r}") from None


def _datetime(value: str) -> datetime:
    """parse_datetime_string (search/utils.py): ISO 8601, naive ones in UTC."""
    try:
        return utc_datetime(value)
    except (ValueError, OverflowError):
        raise BadRequest(f"Invalid date range: {value} is not a valid ISO8601 date query") from None


def date_range(get: dict[str, str], now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """get_date_range_from_params(optional=True): statsPeriod, statsPeriodStart/End or
    start/end; (None, None) when none is given."""
    now = now or datetime.now(UTC)
    end = now
    if (period := get.get("statsPeriod")) is not None:
        start = _stats_period(period, now)
    elif get.get("statsPeriodStart") or get.get("statsPeriodEnd"):
        if not get.get("statsPeriodStart") or not get.get("statsPeriodEnd"):
            raise BadRequest("Invalid date range: statsPeriodStart and statsPeriodEnd are both required")
        start, end = _stats_period(get["statsPeriodStart"], now), _stats_period(get["statsPeriodEnd"], now)
    elif get.get("start") or get.get("end"):
        if not get.get("start") or not get.get("end"):
            raise BadRequest("Invalid date range: start and end are both required")
        start, end = _datetime(get["start"]), _datetime(get["end"])
    else:
        return None, None
    if start >= end:
        raise BadRequest("Invalid date range: start must be before end")
    return start, end


def list_params(get: dict[str, str]) -> ListParams:
    """The list's health and date parameters, checked first, in Sentry's order."""
    with_health = check_health_params(get, check_stat=True)
    start, end = date_range(get)
    return ListParams(
        with_health=with_health, with_adoption_stages=get.get("adoptionStages") == "1", start=start, end=end
    )


def list_sort(get: dict[str, str]) -> str:
    """The list's `sort`, checked after its filters: the order relserver applies."""
    sort = get.get("sort") or "date"
    if sort in SESSION_SORTS:
        if get.get("flatten") != "1":
            raise BadRequest(NEEDS_FLATTEN)
        # Merged with session data, of which there is none: releases in date order.
        return "date"
    if sort not in LIST_SORTS:
        raise BadRequest(INVALID_SORT)
    return "date" if sort == "adoption" else sort
