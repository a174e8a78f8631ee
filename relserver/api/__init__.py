"""The HTTP API: every route on one screen."""

from __future__ import annotations

from aiohttp import web

from . import files, releases

ORG = "/api/0/organizations/{org}"
PROJECT = "/api/0/projects/{org}/{project}"


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.post(f"{ORG}/releases/", releases.create_organization_release),
            web.post(f"{PROJECT}/releases/", releases.create_project_release),
            web.post(f"{ORG}/releases/{{version}}/files/", files.upload_release_file),
            web.post(f"{PROJECT}/releases/{{version}}/files/", files.upload_release_file),
        ]
    )
