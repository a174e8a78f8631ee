"""The HTTP API: every route on one screen."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_routedef import RouteDef

from . import bundles, chunks, files, index, organizations, releases, resolve

ORG = "/api/0/organizations/{org}"
PROJECT = "/api/0/projects/{org}/{project}"


def _in_both_scopes(scope: str) -> list[RouteDef]:
    """Routes that behave the same at organization and project scope."""
    release = f"{scope}/releases/{{version}}"
    return [
        web.get(f"{release}/", releases.release_details),
        web.put(f"{release}/", releases.update_release),
        web.delete(f"{release}/", releases.delete_release),
        web.get(f"{release}/files/", files.list_release_files),
        web.post(f"{release}/files/", files.upload_release_file),
        web.get(f"{release}/files/{{file_id}}/", files.release_file_details),
        web.put(f"{release}/files/{{file_id}}/", files.rename_release_file),
        web.delete(f"{release}/files/{{file_id}}/", files.delete_release_file),
        web.delete(f"{scope}/files/source-maps/", files.delete_all_release_files),
    ]


def setup_routes(app: web.Application) -> None:
    app.router.add_routes(
        [
            web.get("/api/0/", index.api_index),
            web.get(f"{ORG}/releases/", releases.list_organization_releases),
            web.post(f"{ORG}/releases/", releases.create_organization_release),
            web.get(f"{PROJECT}/releases/", releases.list_project_releases),
            web.post(f"{PROJECT}/releases/", releases.create_project_release),
            web.get(f"{ORG}/", organizations.organization_details),
            web.get(f"{ORG}/releases/{{version}}/deploys/", organizations.list_deploys),
            web.post(f"{ORG}/releases/{{version}}/deploys/", organizations.create_deploy),
            web.get(f"{PROJECT}/files/artifact-bundles/", bundles.list_artifact_bundles),
            web.delete(f"{PROJECT}/files/artifact-bundles/", bundles.delete_artifact_bundle),
            web.get(f"{PROJECT}/artifact-bundles/{{bundle_id}}/files/", bundles.list_bundle_files),
            web.get(f"{PROJECT}/artifact-bundles/{{bundle_id}}/files/{{file_id}}/", bundles.download_bundle_file),
            web.get(f"{PROJECT}/artifact-lookup/", bundles.artifact_lookup),
            web.post(f"{PROJECT}/relserver/resolve/", resolve.resolve_frames),
            web.get(f"{ORG}/chunk-upload/", chunks.chunk_upload_options),
            web.post(f"{ORG}/chunk-upload/", chunks.upload_chunks),
            web.post(f"{ORG}/artifactbundle/assemble/", chunks.assemble_artifact_bundle),
            web.post(f"{ORG}/releases/{{version}}/assemble/", chunks.assemble_release_bundle),
            *_in_both_scopes(ORG),
            *_in_both_scopes(PROJECT),
        ]
    )
