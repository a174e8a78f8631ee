"""Sentry's DeploySerializer (releases/endpoints/release_deploys.py), field by field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import BadRequest
from .fields import datetime_field, expect_object, optional_string_field, string_field, url_field

# Environment.is_valid_name / ENVIRONMENT_NAME_PATTERN (models/environment.py, constants.py).
_ENVIRONMENT_NAME = re.compile(r"[^\n\r\f/]*")
MAX_ENVIRONMENT_LENGTH = 64
# DeploySerializer: name is a CharField(max_length=64).
MAX_DEPLOY_NAME_LENGTH = 64


@dataclass(frozen=True, slots=True)
class DeployFields:
    environment: str
    name: str | None
    url: str | None
    date_started: datetime | None
    date_finished: datetime | None


def validate_deploy(data: Any) -> DeployFields:
    """Every field checked, every error reported at once, in DRF's words."""
    data = expect_object(data)
    errors: dict[str, list[str]] = {}
    environment = string_field(data, "environment", errors, max_length=MAX_ENVIRONMENT_LENGTH)
    if environment is not None and not _ENVIRONMENT_NAME.fullmatch(environment):
        errors["environment"] = ["Invalid value for environment"]
    started = datetime_field(data, "dateStarted", errors)
    finished = datetime_field(data, "dateFinished", errors)
    name = optional_string_field(data, "name", errors, max_length=MAX_DEPLOY_NAME_LENGTH)
    url = url_field(data, "url", errors)
    if errors or environment is None:
        raise BadRequest(errors)
    return DeployFields(environment=environment, name=name, url=url, date_started=started, date_finished=finished)
