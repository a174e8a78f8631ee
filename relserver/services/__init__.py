"""Use cases, one function each, between the handlers and the store (DESIGN module map).

Handlers parse the request and serialize the answer; these functions decide. No HTTP objects,
no SQL. The package re-exports each module's public names, so callers say `services.create_release`;
the assembler lives in `services.assembly`.
"""

from __future__ import annotations

from .chunks import (
    store_chunks,
)
from .context import (
    Backend,
    blob_unlinker,
)
from .maintenance import (
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
)
from .releases import (
    ReleaseFields,
    create_release,
    delete_release,
    list_releases,
    update_release,
)
from .scope import (
    INVALID_PROJECTS,
    find_organization,
    find_project,
    find_release_scope,
    get_release,
    provision,
    requested_projects,
    resolve_organization,
    resolve_project,
    resolve_release_projects,
)
from .tokens import (
    bootstrap_tokens,
    write_secret_file,
)

__all__ = [
    "INVALID_PROJECTS",
    "Backend",
    "ReleaseFields",
    "blob_unlinker",
    "bootstrap_tokens",
    "create_release",
    "delete_all_release_files",
    "delete_release",
    "delete_release_file",
    "file_json",
    "find_organization",
    "find_project",
    "find_release_scope",
    "get_any_release_file",
    "get_release",
    "get_release_file",
    "list_release_files",
    "list_releases",
    "provision",
    "rename_release_file",
    "requested_projects",
    "resolve_organization",
    "resolve_project",
    "resolve_release_projects",
    "store_chunks",
    "sweep_leftovers",
    "update_release",
    "upload_release_file",
    "write_secret_file",
]
