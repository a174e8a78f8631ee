"""Sentry's JSON shapes (api/serializers/models/*.py): releases, files, bundles, deploys, orgs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..models import (
    ArtifactBundle,
    BundleFile,
    CommitAuthor,
    CommitFile,
    Deploy,
    LookupHit,
    Organization,
    Project,
    ReleaseCommit,
    ReleaseFile,
    ReleaseView,
    Repository,
)
from .fields import is_valid_version
from .identifiers import encode_archive_entry_id, encode_bundle_file_id
from .semver import SEMVER, build_hash


def format_datetime(value: datetime) -> str:
    """ISO 8601 with six fractional digits and `Z`, the form every Sentry era's clients parse."""
    # isoformat pads the year to four digits; strftime's %Y does not on glibc (year 450 → "450").
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def release_file_json(rf: ReleaseFile) -> dict[str, Any]:
    """The seven keys of Sentry's ReleaseFileSerializer; `id` is a string in every era."""
    return {
        "id": str(rf.id),
        "name": rf.name,
        "dist": rf.dist,
        "headers": rf.headers,
        "size": rf.size,
        "sha1": rf.sha1,
        "dateCreated": format_datetime(rf.date_created),
    }


def version_info(version: str) -> dict[str, Any] | None:
    """Sentry's expose_version_info over sentry-release-parser (`package@version+build`)."""
    if not is_valid_version(version):
        return None
    package, at, rest = version.partition("@")
    match = SEMVER.match(rest) if at and package and rest and not build_hash(rest) else None
    if match is None:
        # Not `package@semver`: the raw string, and a hash if the version part is one.
        hashed = build_hash(rest if at else version)
        return {
            "package": package if at and package else None,
            "version": {"raw": rest if at and package else version},
            "description": hashed[:12] if hashed else version,
            "buildHash": hashed,
        }
    build = match.group("build")
    hashed = build_hash(build)
    label = hashed[:12] if hashed else build
    base = rest.split("+", 1)[0]
    return {
        "package": package,
        "version": {
            "raw": rest,
            "major": int(match.group("major")),
            "minor": int(match.group("minor") or 0),
            "patch": int(match.group("patch") or 0),
            "pre": match.group("pre"),
            "buildCode": build,
            "components": sum(match.group(g) is not None for g in ("major", "minor", "patch", "revision")),
        },
        "description": f"{base} ({label})" if label else base,
        "buildHash": hashed,
    }


def project_json(project: Project) -> dict[str, Any]:
    """An entry of a release's `projects` list (api/serializers/models/release.py)."""
    return {
        "id": project.id,
        "slug": project.slug,
        "name": project.name,
        "newGroups": 0,
        "platform": project.platform,
        "platforms": [project.platform] if project.platform else [],
        "hasHealthData": False,
    }


def release_json(
    view: ReleaseView,
    *,
    current_project_meta: dict[str, Any] | None = None,
    with_health: bool = False,
    with_adoption_stages: bool = False,
) -> dict[str, Any]:
    """Sentry's release JSON (api/serializers/models/release.py): projects, commits and
    deploys as stored; issues, events, sessions and adoption, which relserver does not
    track, as Sentry shows a release without them."""
    release = view.release
    projects = [project_json(p) for p in view.projects]
    if with_health:
        # _expose_project: `healthData` is null when the health backend has nothing.
        projects = [p | {"healthData": None} for p in projects]
    body: dict[str, Any] = {
        "id": release.id,
        "version": release.version,
        "status": release.status,
        "shortVersion": release.version,
        "versionInfo": version_info(release.version),
        "ref": release.ref,
        "url": release.url,
        "dateReleased": format_datetime(release.date_released) if release.date_released else None,
        "dateCreated": format_datetime(release.date_created),
        "data": {},
        "newGroups": 0,
        "owner": None,
        "commitCount": release.commit_count,
        "lastCommit": commit_json(view.last_commit) if view.last_commit else None,
        "deployCount": view.deploy_count,
        "lastDeploy": deploy_json(view.last_deploy) if view.last_deploy else None,
        "authors": [author_json(a) for a in view.authors],
        "projects": projects,
        "firstEvent": None,
        "lastEvent": None,
        "currentProjectMeta": current_project_meta or {},
        "userAgent": release.user_agent,
    }
    if with_adoption_stages:
        # No ReleaseProjectEnvironment rows: attrs carry no adoption stages, so null.
        body["adoptionStages"] = None
    return body


def current_project_meta(
    previous: str | None, following: str | None, first: str | None, last: str | None
) -> dict[str, Any]:
    """_expose_current_project_meta: the session bounds (null: no session data) and the
    neighbour versions, in Sentry's key order."""
    return {
        "sessionsLowerBound": None,
        "sessionsUpperBound": None,
        "nextReleaseVersion": following,
        "prevReleaseVersion": previous,
        "firstReleaseVersion": first,
        "lastReleaseVersion": last,
    }


def repository_json(repo: Repository) -> dict[str, Any]:
    """RepositorySerializer: a repository without a provider is Sentry's "Unknown Provider"."""
    provider = (
        {"id": repo.provider, "name": repo.provider} if repo.provider else {"id": "unknown", "name": "Unknown Provider"}
    )
    return {
        "id": str(repo.id),
        "name": repo.name,
        "url": repo.url,
        "provider": provider,
        "status": repo.status,
        "dateCreated": format_datetime(repo.date_created),
        "integrationId": None,
        "externalSlug": None,
        "externalId": None,
    }


def author_json(author: CommitAuthor | None) -> dict[str, Any]:
    """get_users_for_authors: an author no Sentry user matches is `{name, email}`; none is `{}`."""
    return {"name": author.name, "email": author.email} if author else {}


def commit_json(commit: ReleaseCommit) -> dict[str, Any]:
    """CommitSerializer (api/serializers/models/commit.py) with its repository and author."""
    return {
        "id": commit.key,
        "message": commit.message,
        "dateCreated": format_datetime(commit.date_created),
        "pullRequest": None,
        "suspectCommitType": "",
        "repository": repository_json(commit.repository),
        "author": author_json(commit.author),
    }


def commit_file_json(change: CommitFile) -> dict[str, Any]:
    """CommitFileChangeSerializer (api/serializers/models/filechange.py)."""
    return {
        "id": str(change.id),
        "orgId": change.organization_id,
        "author": author_json(change.author),
        "commitMessage": change.commit_message,
        "filename": change.filename,
        "type": change.type,
        "repoName": change.repository_name,
    }


def archive_entry_json(entry: BundleFile) -> dict[str, Any]:
    """A bundle member in a release's file list: Sentry's release-archive entry shape (project_release_files.py)."""
    return {
        "id": encode_archive_entry_id(entry.dist, entry.url),
        "name": entry.url,
        "dist": entry.dist,
        "headers": entry.headers,
        "size": entry.size,
        "sha1": entry.sha1,
        "dateCreated": format_datetime(entry.date_created),
    }


def _second_precision(value: datetime) -> str:
    """These serializers cut ISO dates to seconds and add `Z`."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def bundle_associations(bundle: ArtifactBundle) -> list[dict[str, Any]]:
    return [{"release": bundle.release, "dist": bundle.dist}] if bundle.release else []


def artifact_bundle_json(bundle: ArtifactBundle) -> dict[str, Any]:
    return {
        "bundleId": bundle.bundle_id,
        "associations": bundle_associations(bundle),
        "fileCount": bundle.file_count,
        "dateModified": _second_precision(bundle.date_modified),
        "date": _second_precision(bundle.date_created),
    }


def bundle_file_json(entry: BundleFile) -> dict[str, Any]:
    """ArtifactBundleFilesSerializer: ids are URL-safe base64 of the path inside the zip."""
    sourcemap = next((v for k, v in entry.headers.items() if k.lower() == "sourcemap"), None)
    return {
        "id": encode_bundle_file_id(entry.path),
        "fileType": file_type_code(entry.file_type),
        "filePath": entry.url,
        "fileSize": entry.size,
        "debugId": entry.debug_id,
        "sourcemap": sourcemap,
    }


def file_type_code(file_type: str | None) -> int:
    """SourceFileType (models/artifactbundle.py): numbers in JSON, 0 when missing or unknown."""
    return {"source": 1, "minified_source": 2, "source_map": 3, "indexed_ram_bundle": 4}.get(file_type or "", 0)


def deploy_json(deploy: Deploy) -> dict[str, Any]:
    """api/serializers/models/deploy.py."""
    return {
        "id": str(deploy.id),
        "environment": deploy.environment,
        "dateStarted": format_datetime(deploy.date_started) if deploy.date_started else None,
        "dateFinished": format_datetime(deploy.date_finished),
        "name": deploy.name,
        "url": deploy.url,
    }


def organization_json(org: Organization, projects: Iterable[Project], origin: str) -> dict[str, Any]:
    """The base keys of OrganizationSerializer plus the detailed `projects` and `teams`."""
    return {
        "id": str(org.id),
        "slug": org.slug,
        "status": {"id": "active", "name": "active"},
        "name": org.name,
        "dateCreated": format_datetime(org.date_created),
        "isEarlyAdopter": False,
        "require2FA": False,
        "requireEmailVerification": False,
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": None, "avatarUrl": None},
        "allowMemberInvite": True,
        "allowMemberProjectCreation": True,
        "allowSuperuserAccess": True,
        "links": {"organizationUrl": origin, "regionUrl": origin},
        "hasAuthProvider": False,
        "features": [],
        "teams": [],
        "projects": [
            {
                "id": str(p.id),
                "slug": p.slug,
                "name": p.name,
                "platform": p.platform,
                "dateCreated": format_datetime(p.date_created),
            }
            for p in projects
        ],
    }


def lookup_hit_json(hit: LookupHit, base_url: str) -> dict[str, Any]:
    """An artifact-lookup answer (api/endpoints/artifact_lookup.py); `base_url` ends in `?download=`."""
    body: dict[str, Any] = {
        "id": hit.target,
        "type": "bundle" if hit.kind == "artifact_bundle" else "file",
        "url": f"{base_url}{hit.target}",
    }
    if hit.kind == "release_file":
        body |= {"abs_path": hit.abs_path, "headers": hit.headers}
    return body | {"resolved_with": hit.resolved_with}


def bundle_files_json(bundle: ArtifactBundle, files: Iterable[BundleFile]) -> dict[str, Any]:
    """A bundle with one page of its files (ArtifactBundleFilesEndpoint)."""
    summary = artifact_bundle_json(bundle)
    return {
        "bundleId": bundle.bundle_id,
        "date": summary["date"],
        "dateModified": summary["dateModified"],
        "fileCount": bundle.file_count,
        "associations": bundle_associations(bundle),
        "files": [bundle_file_json(f) for f in files],
    }
