"""A project's releases, a release with its files, one file: view, download, delete."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from .. import sentry, services
from ..models import BundleFile, Organization, Project, Release, ReleaseCondition, ReleaseFile
from ..services import browse
from .common import (
    backend,
    may_delete,
    page_links,
    project_scope,
    release_scope,
    render,
    require,
    see_other,
    token,
    url,
)
from .downloads import download_response


async def releases(request: web.Request) -> web.Response:
    """As GET /projects/{org}/{project}/releases/: open releases, newest first, `query`, cursors."""
    org, project = await project_scope(request)
    page = sentry.offset_page(request.query.get("per_page"), request.query.get("cursor"))
    query = request.query.get("query") or None
    # The project release list's filter (project_releases.py): `query` is a version substring.
    filters = services.ReleaseFilter(conditions=(ReleaseCondition("contains", values=(query,)),) if query else ())
    views, has_more = await services.list_releases(backend(request), org, page, project=project, filters=filters)
    counts = await browse.release_counts(backend(request), org, [v.release for v in views])
    return render(
        request,
        "releases.html",
        {
            "org": org,
            "project": project,
            "views": views,
            "counts": counts,
            "query": query or "",
            "pages": page_links(request, page, has_more=has_more),
        },
    )


async def release(request: web.Request) -> web.Response:
    """Sentry's release sidebar facts and a page of the release's files (the API's list)."""
    org, project, rel = await release_scope(request)
    page = sentry.offset_page(
        request.query.get("per_page"), request.query.get("cursor"), max_offset=sentry.MAX_RELEASE_FILES_OFFSET
    )
    query = request.query.get("query") or ""
    files, has_more = await services.list_release_files(
        backend(request), org, rel, page, queries=[query] if query else [], checksums=[]
    )
    view = await services.release_view(backend(request), rel)
    deploys, _ = await services.list_deploys(backend(request), rel, sentry.Page(limit=10, offset=0, page=0))
    counts = (await browse.release_counts(backend(request), org, [rel]))[rel.id]
    bundles = await browse.release_bundles(backend(request), org, rel)
    return render(
        request,
        "release.html",
        {
            "org": org,
            "project": project,
            "release": rel,
            "view": view,
            "info": sentry.version_info(rel.version),
            "deploys": deploys,
            "counts": counts,
            "files": [_row(f, base=_files_url(org, project, rel)) for f in files],
            "bundles": bundles,
            "query": query,
            "deleted": request.query.get("deleted"),
            "pages": page_links(request, page, has_more=has_more),
        },
    )


def _row(item: ReleaseFile | BundleFile, *, base: str) -> dict[str, object]:
    """A file as the list shows it: its API id, its page (under `base`) and where it came from."""
    json = services.file_json(item)
    if isinstance(item, BundleFile):
        origin = "bundle"
    elif item.zip_range is not None or item.blob_sha1 != item.sha1:
        origin = "release-bundle"
    else:
        origin = "upload"
    href = base + quote(str(json["id"]), safe="") + "/"
    return {"item": item, "id": json["id"], "name": json["name"], "origin": origin, "href": href}


async def release_file(request: web.Request) -> web.Response:
    org, project, rel = await release_scope(request)
    item = await services.get_any_release_file(backend(request), org, rel, request.match_info["file_id"])
    bundles = await browse.release_bundles(backend(request), org, rel) if isinstance(item, BundleFile) else {}
    return render(
        request,
        "file.html",
        {
            "org": org,
            "project": project,
            "release": rel,
            "row": _row(item, base=_files_url(org, project, rel)),
            "bundles": bundles,
        },
    )


async def download_release_file(request: web.Request) -> web.StreamResponse:
    org, _, rel = await release_scope(request)
    item = await services.get_any_release_file(backend(request), org, rel, request.match_info["file_id"])
    return download_response(request, item)


async def delete_release_file(request: web.Request) -> web.StreamResponse:
    """GET asks to confirm; POST deletes (the API's DELETE, with its scopes)."""
    require(may_delete(token(request)))
    org, project, rel = await release_scope(request)
    raw_id = request.match_info["file_id"]
    item = await services.get_any_release_file(backend(request), org, rel, raw_id)
    row = _row(item, base=_files_url(org, project, rel))
    back = url(org.slug, project.slug, "releases", rel.version)
    if request.method == "GET":
        return render(
            request,
            "confirm.html",
            {
                "title": f"Delete {row['name']}?",
                "what": f"the file {row['name']} of release {rel.version}",
                "warning": "A file that came in a bundle is removed from every bundle of this release and dist."
                if row["origin"] == "bundle"
                else None,
                "cancel": url(org.slug, project.slug, "releases", rel.version, "files", raw_id),
            },
        )
    await services.delete_release_file(backend(request), org, rel, raw_id)
    return see_other(f"{back}?deleted={quote(str(row['name']), safe='')}")


def _files_url(org: Organization, project: Project, rel: Release) -> str:
    return url(org.slug, project.slug, "releases", rel.version, "files")
