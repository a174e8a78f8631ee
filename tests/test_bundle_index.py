"""Bundles are stored whole and indexed (DESIGN D9): one blob per bundle, members as rows that
say where their bytes lie in it, downloads as byte ranges or inflated while they stream."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from relserver import sentry
from relserver.config import Config, MiB
from relserver.ingest import bundle_zip
from relserver.keys import assembler_key, catalog_key
from relserver.storage.sql.sqlite import split_statements
from relserver.storage.sql.sqlite_schema import MIGRATIONS

from .bundle_helpers import make_bundle, upload_bundle, upload_chunks, zip_path
from .conftest import Client, ClientFactory, bearer, create_release, sha1, stored_sha1s

PROJECT = "/api/0/projects/acme/web"
BUNDLE_ID = "b0b0b0b0-0000-4000-8000-0000000000d9"
# Larger than one inflate hop (256 KiB), compressible, and not a run of one byte.
BIG = b"".join(b"function f%d(){return %d}\n" % (i, i * 7) for i in range(40_000))
SMALL = b"console.log('small')\n"


@pytest.fixture
def config(config: Config) -> Config:
    """Room for a bundle of a few hundred KiB (the suite's default file limit is 64 KiB)."""
    return config.with_overrides(max_file_size=8 * MiB)


async def bundle_urls(client: Client, compression: int = zipfile.ZIP_DEFLATED) -> dict[str, str]:
    """Upload a bundle of BIG and SMALL for release 1.0; map url → archive-entry download URL."""
    await create_release(client, "1.0")
    bundle = make_bundle(
        {"~/big.js": BIG, "~/small.js": SMALL}, release="1.0", debug_id=BUNDLE_ID, compression=compression
    )
    result = await upload_bundle(client, bundle, version="1.0", chunk_size=64 * 1024)
    assert result["state"] == "ok", result
    return {
        url: f"{PROJECT}/releases/1.0/files/{sentry.encode_archive_entry_id(None, url)}/?download"
        for url in ("~/big.js", "~/small.js")
    }


async def download(client: Client, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    resp = await client.get(url, headers={**bearer(), **(headers or {})})
    return resp.status, resp.headers, await resp.read()


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
async def test_an_assembled_bundle_is_one_blob_and_its_members_are_not_extracted(
    client: Client, config: Config, compression: int
) -> None:
    await bundle_urls(client, compression)
    on_disk = set(stored_sha1s(config))
    assert not {sha1(BIG), sha1(SMALL)} & on_disk
    async with client.app[catalog_key].read() as tx:
        org = await tx.organizations.get("acme")
        assert org is not None
        project = await tx.projects.get(org.id, "web")
        assert project is not None
        (bundle,) = await tx.bundles.page(org.id, project.id, query=None, order="date_added", offset=0, limit=10)
        members = await tx.members.page(bundle.id)
    rows = [
        (m.url, m.sha1, m.size, m.blob_sha1 == bundle.checksum, m.zip_range and m.zip_range.compression)
        for m in sorted(members, key=lambda m: m.url)
    ]
    assert rows == [
        ("~/big.js", sha1(BIG), len(BIG), True, compression),
        ("~/small.js", sha1(SMALL), len(SMALL), True, compression),
    ]


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
async def test_a_member_downloads_its_exact_bytes_from_inside_the_bundle(client: Client, compression: int) -> None:
    urls = await bundle_urls(client, compression)
    for url, content in (("~/big.js", BIG), ("~/small.js", SMALL)):
        status, headers, body = await download(client, urls[url])
        assert (status, body == content, headers["ETag"]) == (200, True, f'"{sha1(content)}"')
        assert headers["Content-Length"] == str(len(content))
    # The bundle's own listing serves the same bytes.
    files = (await (await client.get(f"{PROJECT}/artifact-bundles/{BUNDLE_ID}/files/", headers=bearer())).json())[
        "files"
    ]
    (big,) = [f for f in files if f["filePath"] == "~/big.js"]
    assert big["fileSize"] == len(BIG)
    status, _, body = await download(client, f"{PROJECT}/artifact-bundles/{BUNDLE_ID}/files/{big['id']}/")
    assert (status, body == BIG) == (200, True)


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
@pytest.mark.parametrize(
    "spec",
    [(0, 0), (1, 99), (300_000, 300_100), (len(BIG) - 10, None), (None, 5), (262_143, 262_145), (0, len(BIG) - 1)],
)
async def test_a_range_of_a_member_is_the_same_range_of_its_content(
    client: Client, compression: int, spec: tuple[int | None, int | None]
) -> None:
    urls = await bundle_urls(client, compression)
    first, last = spec
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    status, headers, body = await download(client, urls["~/big.js"], {"Range": header})
    expected = BIG[-(last or 0) :] if first is None else BIG[first : None if last is None else last + 1]
    assert (status, body == expected, headers["Content-Length"]) == (206, True, str(len(expected)))


async def test_a_range_past_a_members_end_is_416(client: Client) -> None:
    urls = await bundle_urls(client)
    status, headers, _ = await download(client, urls["~/small.js"], {"Range": f"bytes={len(SMALL)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(SMALL)}")


async def test_a_member_in_another_compression_is_extracted_and_still_served(client: Client, config: Config) -> None:
    await create_release(client, "1.0")
    bundle = make_bundle({"~/b.js": BIG}, release="1.0", compression=zipfile.ZIP_BZIP2)
    assert (await upload_bundle(client, bundle, version="1.0", chunk_size=64 * 1024))["state"] == "ok"
    assert sha1(BIG) in set(stored_sha1s(config))
    url = f"{PROJECT}/releases/1.0/files/{sentry.encode_archive_entry_id(None, '~/b.js')}/?download"
    status, _, body = await download(client, url)
    assert (status, body == BIG) == (200, True)


async def test_a_member_whose_crc_is_wrong_fails_assembly_and_stores_nothing(client: Client, config: Config) -> None:
    await create_release(client, "1.0")
    bundle = bytearray(make_bundle({"~/a.js": b"honest bytes\n"}, release="1.0", compression=zipfile.ZIP_STORED))
    at = bytes(bundle).index(b"honest")
    bundle[at] = ord("H")
    before = set(stored_sha1s(config))
    result = await upload_bundle(client, bytes(bundle), version="1.0")
    assert (result["state"], result["detail"]) == (
        "error",
        f"the bundle is invalid: {zip_path('~/a.js')} cannot be read",
    )
    assert await (await client.get(f"{PROJECT}/files/artifact-bundles/", headers=bearer())).json() == []
    chunks = {sha1(bytes(bundle[i : i + 1024])) for i in range(0, len(bundle), 1024)}
    assert set(stored_sha1s(config)) - before <= chunks


def _old_data_dir(config: Config, member: bytes) -> str:
    """A data dir as relserver wrote it before bundles were indexed: schema 3, a member with a
    blob of its own. Returns the member's archive-entry id."""
    config.data_dir.mkdir(parents=True)
    now = "2026-11-01T00:00:00.000000Z"
    zip_sha1 = sha1(b"the old bundle zip")
    with sqlite3.connect(config.db_path) as db:
        for script in MIGRATIONS[:3]:
            for statement in split_statements(script):
                db.execute(statement)
        db.execute("PRAGMA user_version = 3")
        db.execute("INSERT INTO organizations (id, slug, name, date_created) VALUES (1, 'acme', 'acme', ?)", (now,))
        db.execute("INSERT INTO projects VALUES (1, 1, 'web', 'web', NULL, ?)", (now,))
        db.execute("INSERT INTO releases (id, organization_id, version, date_created) VALUES (1, 1, '1.0', ?)", (now,))
        db.execute("INSERT INTO release_projects VALUES (1, 1)")
        for blob_sha1, size in ((sha1(member), len(member)), (zip_sha1, 18)):
            db.execute("INSERT INTO blobs VALUES (?, ?, ?)", (blob_sha1, size, now))
        db.execute(
            "INSERT INTO artifact_bundles VALUES (1, 1, ?, ?, '1.0', NULL, 1, ?, ?)", (BUNDLE_ID, zip_sha1, now, now)
        )
        db.execute("INSERT INTO artifact_bundle_projects VALUES (1, 1)")
        db.execute(
            "INSERT INTO artifact_bundle_files (artifact_bundle_id, path, url, url_folded, file_type, headers,"
            " debug_id, blob_sha1) VALUES (1, ?, '~/old.js', '~/old.js', 'minified_source', '{}', NULL, ?)",
            (zip_path("~/old.js"), sha1(member)),
        )
    for blob_sha1, data in ((sha1(member), member), (zip_sha1, b"the old bundle zip")):
        path = config.blob_dir / blob_sha1[:2] / blob_sha1[2:4] / blob_sha1
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return sentry.encode_archive_entry_id(None, "~/old.js")


@pytest.mark.sqlite_only
@pytest.mark.disk_only
async def test_members_unpacked_by_an_older_version_keep_working_after_the_migration(
    make_client: ClientFactory, config: Config
) -> None:
    entry_id = _old_data_dir(config, SMALL)
    client = await make_client(config)
    (listed,) = await (await client.get(f"{PROJECT}/releases/1.0/files/", headers=bearer())).json()
    assert (listed["id"], listed["sha1"], listed["size"]) == (entry_id, sha1(SMALL), len(SMALL))
    status, headers, body = await download(client, f"{PROJECT}/releases/1.0/files/{entry_id}/?download")
    assert (status, body, headers["ETag"]) == (200, SMALL, f'"{sha1(SMALL)}"')
    status, _, body = await download(
        client, f"{PROJECT}/releases/1.0/files/{entry_id}/?download", {"Range": "bytes=2-4"}
    )
    assert (status, body) == (206, SMALL[2:5])
    # Deleting it frees its own blob, as before.
    resp = await client.delete(f"{PROJECT}/releases/1.0/files/{entry_id}/", headers=bearer())
    assert resp.status == 204
    assert sha1(SMALL) not in set(stored_sha1s(config))


def test_old_members_are_given_their_content_identity_by_the_migration(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    _old_data_dir(config, SMALL)
    with sqlite3.connect(config.db_path) as db:
        for statement in split_statements(MIGRATIONS[3]):
            db.execute(statement)
        row = db.execute("SELECT sha1, size, data_offset FROM artifact_bundle_files").fetchone()
    assert row == (sha1(SMALL), len(SMALL), None)


async def test_many_members_are_indexed_in_parallel_each_with_its_own_identity(client: Client) -> None:
    await create_release(client, "1.0")
    files = {f"~/m{i}.js": b"module %d\n" % i * (i + 1) for i in range(200)}
    assert (await upload_bundle(client, make_bundle(files, release="1.0"), version="1.0", chunk_size=64 * 1024))[
        "state"
    ] == "ok"
    listed = await (await client.get(f"{PROJECT}/releases/1.0/files/?per_page=100", headers=bearer())).json()
    listed += await (
        await client.get(f"{PROJECT}/releases/1.0/files/?per_page=100&cursor=100:1:0", headers=bearer())
    ).json()
    assert {f["name"]: (f["sha1"], f["size"]) for f in listed} == {
        url: (sha1(data), len(data)) for url, data in files.items()
    }


async def test_a_member_too_large_for_one_read_streams_through_the_index(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_zip, "ONE_SHOT_MEMBER_SIZE", 1024)
    urls = await bundle_urls(client)
    status, _, body = await download(client, urls["~/big.js"])
    assert (status, body == BIG) == (200, True)
    listed = await (await client.get(f"{PROJECT}/releases/1.0/files/", headers=bearer())).json()
    assert {f["name"]: f["sha1"] for f in listed} == {"~/big.js": sha1(BIG), "~/small.js": sha1(SMALL)}


@pytest.mark.parametrize("one_shot", [8 * MiB, 16])
async def test_a_deflated_member_whose_bytes_were_damaged_fails_assembly(
    client: Client, monkeypatch: pytest.MonkeyPatch, one_shot: int
) -> None:
    monkeypatch.setattr(bundle_zip, "ONE_SHOT_MEMBER_SIZE", one_shot)
    await create_release(client, "1.0")
    bundle = bytearray(make_bundle({"~/a.js": BIG}, release="1.0"))
    # A byte in the middle of the deflate stream: zlib fails, or the CRC-32 disagrees.
    bundle[len(bundle) // 3] ^= 0xFF
    result = await upload_bundle(client, bytes(bundle), version="1.0", chunk_size=64 * 1024)
    assert (result["state"], result["detail"]) == (
        "error",
        f"the bundle is invalid: {zip_path('~/a.js')} cannot be read",
    )


async def test_a_damaged_member_of_a_release_bundle_fails_its_assembly_in_sentrys_words(client: Client) -> None:
    await create_release(client, "1.0")
    bundle = bytearray(make_bundle({"~/a.js": BIG}, release="1.0"))
    bundle[len(bundle) // 3] ^= 0xFF
    chunks = [bytes(bundle[i : i + 64 * 1024]) for i in range(0, len(bundle), 64 * 1024)]
    await upload_chunks(client, chunks)
    body = {"checksum": sha1(bytes(bundle)), "chunks": [sha1(c) for c in chunks]}
    url = "/api/0/organizations/acme/releases/1.0/assemble/"
    await client.post(url, json=body, headers=bearer())
    await client.app[assembler_key].wait_idle()
    result = await (await client.post(url, json=body, headers=bearer())).json()
    assert (result["state"], result["detail"]) == (
        "error",
        f"failed to extract bundle: {zip_path('~/a.js')} cannot be read",
    )


# --- release bundles (sentry-cli 2.x `release_files`) are stored whole too --------------------


async def assemble_release_bundle(client: Client, files: dict[str, bytes], compression: int) -> dict[str, Any]:
    bundle = make_bundle(files, release="1.0", compression=compression)
    # Three chunks: none of them the zip itself, which chunk ownership would keep alive.
    size = len(bundle) // 3 + 1
    chunks = [bundle[i : i + size] for i in range(0, len(bundle), size)]
    await upload_chunks(client, chunks)
    body = {"checksum": sha1(bundle), "chunks": [sha1(c) for c in chunks]}
    url = "/api/0/organizations/acme/releases/1.0/assemble/"
    await client.post(url, json=body, headers=bearer())
    await client.app[assembler_key].wait_idle()
    result: dict[str, Any] = await (await client.post(url, json=body, headers=bearer())).json()
    assert result["state"] == "ok", result
    return {"bundle": bundle, **result}


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
async def test_a_release_bundle_is_one_blob_and_its_files_download_from_inside_it(
    client: Client, config: Config, compression: int
) -> None:
    await create_release(client, "1.0")
    stored = await assemble_release_bundle(client, {"~/big.js": BIG, "~/small.js": SMALL}, compression)
    on_disk = set(stored_sha1s(config))
    assert sha1(stored["bundle"]) in on_disk and not {sha1(BIG), sha1(SMALL)} & on_disk
    listed = await (await client.get(f"{PROJECT}/releases/1.0/files/", headers=bearer())).json()
    assert {f["name"]: (f["sha1"], f["size"]) for f in listed} == {
        "~/big.js": (sha1(BIG), len(BIG)),
        "~/small.js": (sha1(SMALL), len(SMALL)),
    }
    big = next(f for f in listed if f["name"] == "~/big.js")
    status, headers, body = await download(client, f"{PROJECT}/releases/1.0/files/{big['id']}/?download")
    assert (status, body == BIG, headers["ETag"]) == (200, True, f'"{sha1(BIG)}"')
    status, _, body = await download(
        client, f"{PROJECT}/releases/1.0/files/{big['id']}/?download", {"Range": "bytes=300000-300099"}
    )
    assert (status, body) == (206, BIG[300_000:300_100])
    # The checksum filter finds a file by its content's sha1, not by the blob holding it.
    found = await (await client.get(f"{PROJECT}/releases/1.0/files/?checksum={sha1(SMALL)}", headers=bearer())).json()
    assert [f["name"] for f in found] == ["~/small.js"]
    # So does the artifact lookup's release-file fallback, and its download.
    (hit,) = await (await client.get(f"{PROJECT}/artifact-lookup/?release=1.0&url=small.js", headers=bearer())).json()
    status, _, body = await download(client, f"{PROJECT}/artifact-lookup/?download={hit['id']}")
    assert (status, body) == (200, SMALL)


async def test_a_new_release_bundle_replaces_its_files_and_frees_the_old_zip_once_unread(
    client: Client, config: Config
) -> None:
    await create_release(client, "1.0")
    first = await assemble_release_bundle(
        client, {"~/a.js": b"first a\n", "~/b.js": b"first b\n"}, zipfile.ZIP_DEFLATED
    )
    second = await assemble_release_bundle(client, {"~/a.js": b"second a\n"}, zipfile.ZIP_DEFLATED)
    listed = await (await client.get(f"{PROJECT}/releases/1.0/files/", headers=bearer())).json()
    by_name = {f["name"]: f for f in listed}
    assert (by_name["~/a.js"]["sha1"], by_name["~/b.js"]["sha1"]) == (sha1(b"second a\n"), sha1(b"first b\n"))
    for name, content in (("~/a.js", b"second a\n"), ("~/b.js", b"first b\n")):
        status, _, body = await download(client, f"{PROJECT}/releases/1.0/files/{by_name[name]['id']}/?download")
        assert (status, body) == (200, content)
    on_disk = set(stored_sha1s(config))
    # ~/b.js still reads from the first zip; deleting it lets that zip go.
    assert {sha1(first["bundle"]), sha1(second["bundle"])} <= on_disk
    resp = await client.delete(f"{PROJECT}/releases/1.0/files/{by_name['~/b.js']['id']}/", headers=bearer())
    assert resp.status == 204
    assert sha1(first["bundle"]) not in set(stored_sha1s(config))
    assert sha1(second["bundle"]) in set(stored_sha1s(config))
