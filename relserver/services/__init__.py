"""Use cases, one function each, between the handlers and the store (DESIGN module map).

Handlers parse the request and serialize the answer; these functions decide. No HTTP objects,
no SQL. The package re-exports each module's public names, so callers say `services.create_release`;
the assembler lives in `services.assembly`, resolve (and its parsers and result types) in
`services.resolve`.
"""

from __future__ import annotations

from .bundles import (
    BUNDLE_SORTS,
    bound_bundle,
    bundle_member,
    delete_artifact_bundle,
    list_artifact_bundles,
    list_bundle_files,
    save_artifact_bundle,
)
from .chunks import (
    store_chunks,
)
from .commits import (
    CommitsOutcome,
    list_commit_files,
    list_release_commits,
    list_repositories,
    previous_with_commits,
)
from .context import (
    Backend,
    delete_after_commit,
)
from .lookup import (
    MAX_BUNDLES_QUERY,
    MAX_RELEASEFILES_QUERY,
    LookupDownload,
    artifact_lookup,
    lookup_download,
)
from .maintenance import (
    DataDirCheck,
    check_data_dir,
    sweep_leftovers,
)
from .release_files import (
    delete_all_release_files,
    delete_release_file,
    file_json,
    get_any_release_file,
    get_release_file,
    list_release_files,
    rename_release_file,
    upload_release_file,
    upsert_release_bundle,
)
from .releases import (
    Neighbours,
    ReleaseFields,
    ReleaseFilter,
    add_deploy,
    backfill_semver,
    create_release,
    delete_release,
    known_environments,
    list_deploys,
    list_releases,
    organization_projects,
    project_neighbours,
    release_view,
    update_release,
)
from .scope import (
    INVALID_PROJECTS,
    PrefetchedScope,
    find_organization,
    find_project,
    find_release_scope,
    get_release,
    meta_project,
    provision,
    requested_projects,
    resolve_organization,
    resolve_project,
    resolve_release_projects,
)
from .tokens import (
    bootstrap_tokens,
    create_token,
    list_tokens,
    revoke_token,
    token_and_release_scope,
    token_for,
    write_secret_file,
)

__all__ = [
    "BUNDLE_SORTS",
    "INVALID_PROJECTS",
    "MAX_BUNDLES_QUERY",
    "MAX_RELEASEFILES_QUERY",
    "Backend",
    "CommitsOutcome",
    "DataDirCheck",
    "LookupDownload",
    "Neighbours",
    "PrefetchedScope",
    "ReleaseFields",
    "ReleaseFilter",
    "add_deploy",
    "artifact_lookup",
    "backfill_semver",
    "bootstrap_tokens",
    "bound_bundle",
    "bundle_member",
    "check_data_dir",
    "create_release",
    "create_token",
    "delete_after_commit",
    "delete_all_release_files",
    "delete_artifact_bundle",
    "delete_release",
    "delete_release_file",
    "file_json",
    "find_organization",
    "find_project",
    "find_release_scope",
    "get_any_release_file",
    "get_release",
    "get_release_file",
    "known_environments",
    "list_artifact_bundles",
    "list_bundle_files",
    "list_commit_files",
    "list_deploys",
    "list_release_commits",
    "list_release_files",
    "list_releases",
    "list_repositories",
    "list_tokens",
    "lookup_download",
    "meta_project",
    "organization_projects",
    "previous_with_commits",
    "project_neighbours",
    "provision",
    "release_view",
    "rename_release_file",
    "requested_projects",
    "resolve_organization",
    "resolve_project",
    "resolve_release_projects",
    "revoke_token",
    "save_artifact_bundle",
    "store_chunks",
    "sweep_leftovers",
    "token_and_release_scope",
    "token_for",
    "update_release",
    "upload_release_file",
    "upsert_release_bundle",
    "write_secret_file",
]
