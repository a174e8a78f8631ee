"""Release handlers: create at organization and project scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from .. import sentry, service
from ..auth import RELEASE_SCOPES
from ..errors import BadRequest
from .common import backend, json_response, organization, organization_and_project, read_data, requires

# DRF DateTimeField's message for an unparsable value.
DATETIME_FORMAT_ERROR = (
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
# 208 Already Reported: Sentry's answer when the create changed nothing.
ALREADY_REPORTED = 208


def _optional_string(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        errors[key] = [sentry.FIELD_NOT_STRING]
        return None
    return str(value) or None


def _optional_datetime(data: dict[str, Any], key: str, errors: dict[str, list[str]]) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        errors[key] = [DATETIME_FORMAT_ERROR]
        return None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _release_fields(request: web.Request, data: dict[str, Any], errors: dict[str, list[str]]) -> service.ReleaseFields:
    return service.ReleaseFields(
        ref=_optional_string(data, "ref", errors),
        url=_optional_string(data, "url", errors),
        date_released=_optional_datetime(data, "dateReleased", errors),
        # The create endpoints record the caller's User-Agent ("" when absent).
        user_agent=request.headers.get("User-Agent", ""),
    )


def _project_refs(data: dict[str, Any], errors: dict[str, list[str]]) -> list[str]:
    if "projects" not in data:
        errors["projects"] = [sentry.FIELD_REQUIRED]
        return []
    value = data["projects"]
    if isinstance(value, str) or not isinstance(value, list):
        # DRF ListField's message.
        errors["projects"] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return []
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        errors["projects"] = [service.INVALID_PROJECTS]
        return []
    return [str(v) for v in value]


def _created_or_reported(changed: bool) -> int:
    return 201 if changed else ALREADY_REPORTED


@requires(RELEASE_SCOPES)
async def create_organization_release(request: web.Request) -> web.Response:
    """POST /organizations/{org}/releases/ (organization_releases.py)."""
    org = await organization(request)
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    version = sentry.validate_version_field(data, errors)
    refs = _project_refs(data, errors)
    fields = _release_fields(request, data, errors)
    if errors or version is None:
        raise BadRequest(errors)
    projects = await service.resolve_release_projects(backend(request), org, refs)
    release, changed, linked = await service.create_release(backend(request), org, version, projects, fields)
    return json_response(sentry.release_json(release, linked), status=_created_or_reported(changed))


@requires(RELEASE_SCOPES)
async def create_project_release(request: web.Request) -> web.Response:
    """POST /projects/{org}/{project}/releases/: 201 when this project is newly linked, else 208."""
    org, project = await organization_and_project(request)
    assert project is not None
    data = sentry.expect_object(await read_data(request))
    errors: dict[str, list[str]] = {}
    version = sentry.validate_version_field(data, errors)
    fields = _release_fields(request, data, errors)
    if errors or version is None:
        raise BadRequest(errors)
    release, changed, linked = await service.create_release(backend(request), org, version, [project], fields)
    return json_response(sentry.release_json(release, linked), status=_created_or_reported(changed))
