"""A project's artifact bundles, one bundle's files, one member: view, download, delete;
a debug id or bundle id in the search box lands on the file or bundle itself."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from .. import sentry, services
from ..api.bundles import BUNDLES_PER_PAGE
from ..errors import APIError, NotFound
from ..models import ArtifactBundle, BundleFile
from ..sentry.sourcemaps import normalize_debug_id
from ..services import browse
from .common import backend, may_delete, page_links, project_scope, render, require, see_other, token, url
from .downloads import download_response

# Members shown when a debug id is found in more than one (re-uploads of the same build).
DEBUG_ID_MATCHES = 50
FILE_TYPES = {
    "source": "Source",
    "minified_source": "Minified",
    "source_map": "Source Map",
    "indexed_ram_bundle": "Indexed RAM Bundle",
}


def member_id(member: BundleFile) -> str:
    """The API's id of a member."""
    return sentry.encode_bundle_file_id(member.path)


def sourcemap_reference(member: BundleFile) -> str | None:
    return next((v for k, v in member.headers.items() if k.lower() == "sourcemap"), None)


async def bundles(request: web.Request) -> web.StreamResponse:
    """As GET …/files/artifact-bundles/ (`query`, `sortBy`, 10 a page); a debug id opens its file."""
    org, project = await project_scope(request)
    query = (request.query.get("query") or "").strip()
    matches = []
    debug_id = normalize_debug_id(query) if query else None
    if debug_id is not None:
        matches = await browse.members_with_debug_id(backend(request), org, project, debug_id, limit=DEBUG_ID_MATCHES)
        # A source file and its map share a debug id: the search lands on the source file.
        sources = [(b, m) for b, m in matches if m.file_type != "source_map"] or matches
        if len(sources) == 1:
            bundle, member = sources[0]
            return see_other(url(org.slug, project.slug, "bundles", bundle.bundle_id, "files", member_id(member)))
        if not matches:
            try:
                found = await services.bound_bundle(backend(request), org, project, debug_id)
            except APIError:
                found = None
            if found is not None:
                return see_other(url(org.slug, project.slug, "bundles", found.bundle_id))
    page = sentry.offset_page(request.query.get("per_page", str(BUNDLES_PER_PAGE)), request.query.get("cursor"))
    sort = request.query.get("sortBy", "-date_added")
    found_bundles, has_more = await services.list_artifact_bundles(
        backend(request), org, project, page, query=query or None, sort=sort
    )
    return render(
        request,
        "bundles.html",
        {
            "org": org,
            "project": project,
            "bundles": found_bundles,
            "matches": [(b, m, member_id(m)) for b, m in matches],
            "query": query,
            "sort": sort,
            "sorts": services.BUNDLE_SORTS,
            "deleted": request.query.get("deleted"),
            "pages": page_links(request, page, has_more=has_more),
        },
    )


async def bundle(request: web.Request) -> web.Response:
    org, project = await project_scope(request)
    found = await _bundle(request)
    page = sentry.offset_page(
        request.query.get("per_page"), request.query.get("cursor"), max_offset=sentry.MAX_RELEASE_FILES_OFFSET
    )
    query = request.query.get("query") or ""
    members, has_more = await services.list_bundle_files(backend(request), found, page, query=query or None)
    return render(
        request,
        "bundle.html",
        {
            "org": org,
            "project": project,
            "bundle": found,
            "members": [(m, member_id(m), sourcemap_reference(m)) for m in members],
            "types": FILE_TYPES,
            "query": query,
            "pages": page_links(request, page, has_more=has_more),
        },
    )


async def _bundle(request: web.Request) -> ArtifactBundle:
    org, project = await project_scope(request)
    try:
        return await services.bound_bundle(backend(request), org, project, request.match_info["bundle_id"])
    except APIError:
        raise NotFound({"detail": "No artifact bundle with this id in this project."}) from None


async def _member(request: web.Request) -> tuple[ArtifactBundle, BundleFile]:
    found = await _bundle(request)
    raw_id = request.match_info["file_id"]
    path = sentry.decode_bundle_file_id(raw_id)
    if path is None:
        raise NotFound({"detail": "No such file in this bundle."})
    try:
        return found, await services.bundle_member(backend(request), found, path)
    except APIError:
        raise NotFound({"detail": "No such file in this bundle."}) from None


async def member(request: web.Request) -> web.Response:
    org, project = await project_scope(request)
    found, item = await _member(request)
    return render(
        request,
        "member.html",
        {
            "org": org,
            "project": project,
            "bundle": found,
            "member": item,
            "member_id": member_id(item),
            "sourcemap": sourcemap_reference(item),
            "types": FILE_TYPES,
        },
    )


async def download_member(request: web.Request) -> web.StreamResponse:
    _, item = await _member(request)
    return download_response(request, item)


async def delete_bundle(request: web.Request) -> web.StreamResponse:
    """GET asks to confirm; POST deletes as the API does (unlink this project; the bundle goes
    when no project keeps it)."""
    require(may_delete(token(request)))
    org, project = await project_scope(request)
    found = await _bundle(request)
    if request.method == "GET":
        return render(
            request,
            "confirm.html",
            {
                "title": f"Delete bundle {found.bundle_id}?",
                "what": f"the artifact bundle {found.bundle_id} ({found.file_count} files) from project {project.slug}",
                "warning": None,
                "cancel": url(org.slug, project.slug, "bundles", found.bundle_id),
            },
        )
    await services.delete_artifact_bundle(backend(request), org, project, found.bundle_id)
    return see_other(f"{url(org.slug, project.slug, 'bundles')}?deleted={quote(found.bundle_id, safe='')}")
