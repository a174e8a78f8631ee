"""Assemble bodies (organization_release_assemble.py, organization_artifactbundle_assemble.py)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..errors import BadRequest
from .fields import first_surrogate, surrogate_error

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
