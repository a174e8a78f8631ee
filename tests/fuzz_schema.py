"""An OpenAPI description of every route relserver serves, written for the schema fuzzer.

Sentry's published schema covers organization details, releases, release files and deploys;
chunk upload, both assembles, artifact bundles, the artifact lookup and `files/source-maps`
are not in it, nor relserver's own resolve. This one describes all of them in the same terms (Sentry's parameter names
and body fields), so schemathesis can send valid, schema-derived and malformed requests to
each. Path parameters list the objects the fuzz server is seeded with, so valid requests
reach the handlers' logic; negative generation sends anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ORG = "/api/0/organizations/{organization_id_or_slug}"
PROJECT = "/api/0/projects/{organization_id_or_slug}/{project_id_or_slug}"


@dataclass(frozen=True)
class Seed:
    """What the fuzz server holds before the fuzzer starts."""

    org: str
    project: str
    release: str
    file_ids: tuple[str, ...]
    bundle_id: str
    bundle_file_id: str
    # Objects the delete operations may destroy; the rest stay for every other operation.
    doomed_release: str
    doomed_file_id: str
    doomed_bundle_id: str


def _string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _path(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _string(enum=values)}


def _query(name: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or _string(), **extra}


def _json_body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _multipart(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _operation(parameters: list[dict[str, Any]], body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"parameters": parameters, "responses": {"default": {"description": "any answer"}}}
    if body is not None:
        operation["requestBody"] = body
    return operation


PAGING = [_query("per_page"), _query("cursor")]
DATE = _string(format="date-time")
SHA1 = _string(pattern="^[0-9a-f]{40}$")


def relserver_openapi(seed: Seed) -> dict[str, Any]:
    org = _path("organization_id_or_slug", [seed.org])
    project = _path("project_id_or_slug", [seed.project])
    version = _path("version", [seed.release])
    doomed_version = _path("version", [seed.doomed_release])
    file_id = _path("file_id", list(seed.file_ids))
    release_body = {
        "version": _string(),
        "projects": {"type": "array", "items": _string()},
        "ref": _string(),
        "url": _string(),
        "dateReleased": DATE,
    }
    update_body = {k: v for k, v in release_body.items() if k != "version"} | {
        "status": _string(enum=["open", "archived"])
    }
    upload = _multipart(
        {
            "file": _string(format="binary"),
            "name": _string(),
            "dist": _string(),
            "header": {"type": "array", "items": _string()},
        },
        ["file"],
    )
    listing = [*PAGING, _query("query"), _query("checksum")]
    paths: dict[str, Any] = {
        "/api/0/": {"get": _operation([])},
        f"{ORG}/": {"get": _operation([org])},
        f"{ORG}/releases/": {
            "get": _operation(
                [org, *PAGING, _query("query"), _query("status"), _query("project", {"type": "integer"})]
            ),
            "post": _operation([org], _json_body(release_body, ["version", "projects"])),
        },
        f"{PROJECT}/releases/": {
            "get": _operation([org, project, *PAGING, _query("query")]),
            "post": _operation([org, project], _json_body(release_body, ["version"])),
        },
        f"{ORG}/releases/{{version}}/deploys/": {
            "get": _operation([org, version, *PAGING]),
            "post": _operation(
                [org, version],
                _json_body(
                    {
                        "environment": _string(),
                        "name": _string(),
                        "url": _string(),
                        "dateStarted": DATE,
                        "dateFinished": DATE,
                    },
                    ["environment"],
                ),
            ),
        },
        f"{ORG}/chunk-upload/": {
            "get": _operation([org]),
            "post": _operation([org], _multipart({"file": _string(format="binary")}, ["file"])),
        },
        f"{ORG}/artifactbundle/assemble/": {
            "post": _operation(
                [org],
                _json_body(
                    {
                        "checksum": SHA1,
                        "chunks": {"type": "array", "items": SHA1},
                        "projects": {"type": "array", "items": _string()},
                        "version": _string(),
                        "dist": _string(),
                    },
                    ["checksum", "chunks", "projects"],
                ),
            )
        },
        f"{ORG}/releases/{{version}}/assemble/": {
            "post": _operation(
                [org, version],
                _json_body({"checksum": SHA1, "chunks": {"type": "array", "items": SHA1}}, ["checksum", "chunks"]),
            )
        },
        f"{PROJECT}/files/artifact-bundles/": {
            "get": _operation([org, project, *PAGING, _query("query"), _query("sortBy")]),
            "delete": _operation([org, project, _query("bundleId", _string(enum=[seed.doomed_bundle_id]))]),
        },
        f"{PROJECT}/artifact-bundles/{{bundle_id}}/files/": {
            "get": _operation([org, project, _path("bundle_id", [seed.bundle_id]), *PAGING, _query("query")])
        },
        f"{PROJECT}/artifact-bundles/{{bundle_id}}/files/{{file_id}}/": {
            "get": _operation(
                [org, project, _path("bundle_id", [seed.bundle_id]), _path("file_id", [seed.bundle_file_id])]
            )
        },
        f"{PROJECT}/artifact-lookup/": {
            "get": _operation(
                [org, project, _query("debug_id"), _query("url"), _query("release"), _query("dist"), _query("download")]
            )
        },
        f"{PROJECT}/relserver/resolve/": {
            "post": _operation(
                [org, project],
                _json_body(
                    {
                        "release": _string(enum=[seed.release]),
                        "dist": _string(),
                        "frames": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "abs_path": _string(enum=["~/app.js", "~/bundled.js"]),
                                    "lineno": {"type": "integer"},
                                    "colno": {"type": "integer"},
                                    "function": _string(),
                                    "debug_id": _string(),
                                },
                                "required": ["abs_path", "lineno"],
                            },
                        },
                        "event": {"type": "object"},
                        "stacktrace": _string(),
                    }
                ),
            )
        },
    }
    for scope, scope_params in ((ORG, [org]), (PROJECT, [org, project])):
        release_path = f"{scope}/releases/{{version}}"
        paths[f"{release_path}/"] = {
            "get": _operation([*scope_params, version]),
            "put": _operation([*scope_params, version], _json_body(update_body)),
        }
        paths[f"{release_path}/files/"] = {
            "get": _operation([*scope_params, version, *listing]),
            "post": _operation([*scope_params, version], upload),
        }
        paths[f"{release_path}/files/{{file_id}}/"] = {
            "get": _operation([*scope_params, version, file_id, _query("download")]),
            "put": _operation([*scope_params, version, file_id], _json_body({"name": _string()}, ["name"])),
        }
        paths[f"{scope}/files/source-maps/"] = {
            "delete": _operation([*scope_params, _query("name", _string(enum=[seed.doomed_release]))])
        }
    # Deletes name only objects seeded to be destroyed, at both scopes.
    for scope, scope_params in ((ORG, [org]), (PROJECT, [org, project])):
        paths[f"{scope}/releases/{{version}}/"]["delete"] = _operation([*scope_params, doomed_version])
        paths[f"{scope}/releases/{{version}}/files/{{file_id}}/"]["delete"] = _operation(
            [*scope_params, version, _path("file_id", [seed.doomed_file_id])]
        )
    return {
        "openapi": "3.0.3",
        "info": {"title": "relserver (every route, for fuzzing)", "version": "0"},
        "paths": paths,
    }
