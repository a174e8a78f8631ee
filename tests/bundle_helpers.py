"""Building what sentry-cli uploads: SYSB-prefixed bundle zips and chunk POST bodies."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from .conftest import Client, bearer, sha1

ORG_URL = "/api/0/organizations/acme"


def zip_path(url: str) -> str:
    """sentry-cli's layout: `~/x` → `files/_/_/x`."""
    return "files/_/_/" + url.removeprefix("~/")


def make_bundle(
    files: Mapping[str, bytes],
    *,
    release: str | None = None,
    dist: str | None = None,
    org: str = "acme",
    headers: Mapping[str, dict[str, str]] | None = None,
    types: Mapping[str, str] | None = None,
    debug_id: str | None = None,
    extra_members: Iterable[tuple[str, bytes]] = (),
    manifest: dict[str, Any] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """`SYSB` + u32le(2) + a zip holding the members and manifest.json, as symbolic writes it."""
    entries = {}
    for url in files:
        entry: dict[str, Any] = {"url": url, "type": (types or {}).get(url, "minified_source")}
        if headers and url in headers:
            entry["headers"] = headers[url]
        entries[zip_path(url)] = entry
    body: dict[str, Any] = {"files": entries, "org": org}
    for key, value in (("release", release), ("dist", dist), ("debug_id", debug_id)):
        if value is not None:
            body[key] = value
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for url, data in files.items():
            archive.writestr(zip_path(url), data)
        for name, data in extra_members:
            archive.writestr(name, data)
        archive.writestr("manifest.json", json.dumps(manifest if manifest is not None else body))
    return b"SYSB" + struct.pack("<I", 2) + buffer.getvalue()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def chunk_form(
    chunks: Iterable[bytes], *, gzipped: bool = True, names: Iterable[str] | None = None
) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    chunk_list = list(chunks)
    for data, name in zip(chunk_list, names or [sha1(c) for c in chunk_list], strict=True):
        if gzipped:
            form.add_field("file_gzip", gzip.compress(data), filename=name, content_type="application/octet-stream")
        else:
            form.add_field("file", data, filename=name, content_type="application/octet-stream")
    return form


async def upload_chunks(
    client: Client, chunks: Iterable[bytes], *, org: str = "acme", token: str | None = None
) -> None:
    resp = await client.post(
        f"/api/0/organizations/{org}/chunk-upload/",
        data=chunk_form(chunks),
        headers=bearer(token) if token else bearer(),
    )
    assert resp.status == 200, await resp.text()


async def assemble(client: Client, body: dict[str, Any], *, org: str = "acme") -> Any:
    resp = await client.post(f"/api/0/organizations/{org}/artifactbundle/assemble/", json=body, headers=bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def upload_bundle(
    client: Client,
    bundle: bytes,
    *,
    projects: Iterable[str] = ("web",),
    version: str | None = None,
    dist: str | None = None,
    chunk_size: int = 1024,
    org: str = "acme",
) -> dict[str, Any]:
    """What sentry-cli 3.x does: ask, upload the missing chunks, assemble, then wait."""
    from relserver.keys import assembler_key

    chunks = split(bundle, chunk_size)
    body: dict[str, Any] = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in chunks], "projects": list(projects)}
    if version is not None:
        body["version"] = version
    if dist is not None:
        body["dist"] = dist
    first = await assemble(client, body, org=org)
    missing = set(first["missingChunks"])
    if missing:
        await upload_chunks(client, [c for c in chunks if sha1(c) in missing], org=org)
    await assemble(client, body, org=org)
    await client.app[assembler_key].wait_idle()
    result: dict[str, Any] = await assemble(client, body, org=org)
    return result
