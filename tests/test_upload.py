"""The single-file upload endpoint, POST …/releases/{version}/files/ (Sentry's project_release_files.py)."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import aiohttp
import pytest
from aiohttp import MultipartWriter

from relserver.config import Config, KiB
from relserver.keys import blobstore_key, catalog_key
from relserver.models import StoredBlob
from relserver.storage.blobs import BlobStore
from relserver.storage.blobs.disk import TempBlob
from relserver.storage.sql.sqlite import SqliteCatalog

from .conftest import (
    ADMIN_TOKEN,
    Client,
    ClientFactory,
    assert_api_error,
    bearer,
    create_release,
    files_url,
    sha1,
    stored_sha1s,
    temp_files,
    upload,
    upload_form,
)

DATE_CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
async def release(client: Client) -> dict[str, Any]:
    return await create_release(client)


@pytest.mark.usefixtures("release")
class TestHappyPath:
    async def test_upload_answers_201_with_sentrys_seven_keys(self, client: Client) -> None:
        data = b"function a(){}\n"
        resp = await upload(client, data, name="~/static/app.min.js", headers=["Sourcemap: app.min.js.map"])
        assert resp.status == 201
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
        assert list(body) == ["id", "name", "dist", "headers", "size", "sha1", "dateCreated"]
        assert isinstance(body["id"], str) and body["id"].isdigit()
        assert body["name"] == "~/static/app.min.js"
        assert body["dist"] is None
        assert body["headers"] == {"Content-Type": "application/octet-stream", "Sourcemap": "app.min.js.map"}
        assert body["size"] == len(data)
        assert body["sha1"] == sha1(data)
        assert DATE_CREATED.fullmatch(body["dateCreated"])

    async def test_repeated_headers_keep_order_and_later_keys_overwrite(self, client: Client) -> None:
        resp = await upload(client, headers=["X-B: 1", "X-A:2", "X-B:3", "Content-Type: text/javascript"])
        body = await resp.json()
        assert list(body["headers"].items()) == [("Content-Type", "text/javascript"), ("X-B", "3"), ("X-A", "2")]

    async def test_header_key_is_kept_as_sent_and_value_trimmed(self, client: Client) -> None:
        resp = await upload(client, headers=[" X-Foo : bar ", "content-type:text/plain", ":empty-key", "X-Empty:"])
        headers = (await resp.json())["headers"]
        # A lowercase content-type is a separate key; the key is not trimmed (Sentry keeps it as is).
        assert headers == {
            "Content-Type": "application/octet-stream",
            " X-Foo ": "bar",
            "content-type": "text/plain",
            "": "empty-key",
            "X-Empty": "",
        }

    async def test_part_content_type_is_bare_and_lowercased(self, client: Client) -> None:
        resp = await upload(client, content_type="Text/JavaScript; charset=utf-8")
        assert (await resp.json())["headers"] == {"Content-Type": "text/javascript"}

    async def test_dist_is_stored_and_returned(self, client: Client) -> None:
        resp = await upload(client, dist="d1")
        assert resp.status == 201
        assert (await resp.json())["dist"] == "d1"

    async def test_empty_file_is_accepted(self, client: Client) -> None:
        resp = await upload(client, b"")
        body = await resp.json()
        assert resp.status == 201
        assert (body["size"], body["sha1"]) == (0, sha1(b""))

    async def test_missing_name_falls_back_to_the_parts_basename(self, client: Client) -> None:
        resp = await upload(client, name=None, filename="dist/static/bundle.js")
        assert (await resp.json())["name"] == "bundle.js"

    async def test_repeated_name_field_reads_as_its_last_value(self, client: Client) -> None:
        form = aiohttp.FormData()
        form.add_field("file", b"x", filename="a.js")
        form.add_field("name", "~/first.js")
        form.add_field("name", "~/last.js")
        resp = await client.post(files_url("1.0"), data=form, headers=bearer())
        assert (await resp.json())["name"] == "~/last.js"

    async def test_fields_may_come_before_the_file(self, client: Client) -> None:
        with MultipartWriter("form-data") as mp:
            for name, value in (("name", "~/first.js"), ("dist", "d9"), ("header", "X-A:1")):
                mp.append(value).set_content_disposition("form-data", name=name)
            part = mp.append(b"payload", {"Content-Type": "text/plain"})
            part.set_content_disposition("form-data", name="file", filename="f.js")
        resp = await client.post(files_url("1.0"), data=mp, headers=bearer())
        body = await resp.json()
        assert resp.status == 201
        assert (body["name"], body["dist"], body["headers"]) == (
            "~/first.js",
            "d9",
            {"Content-Type": "text/plain", "X-A": "1"},
        )

    async def test_chunked_request_without_content_length_is_streamed(self, client: Client) -> None:
        boundary = "relserverboundary"
        payload = b"x" * (40 * KiB)

        async def body() -> Any:
            yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.js"\r\n\r\n'.encode()
            for i in range(0, len(payload), 1000):
                yield payload[i : i + 1000]
            yield f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n~/c.js\r\n'.encode()
            yield f"--{boundary}--\r\n".encode()

        resp = await client.post(
            files_url("1.0"),
            data=body(),
            headers={**bearer(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["sha1"] == sha1(payload)

    async def test_org_scope_upload_works_like_project_scope(self, client: Client) -> None:
        resp = await upload(client, project=None, name="~/org.js")
        assert resp.status == 201
        assert (await resp.json())["name"] == "~/org.js"


@pytest.mark.usefixtures("release")
class TestSentryValidation:
    async def test_missing_file_part_is_400(self, client: Client) -> None:
        form = aiohttp.FormData({"name": "~/a.js"})
        form.add_field("header", "X:1")
        resp = await client.post(files_url("1.0"), data=form(), headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Missing uploaded file"})

    async def test_file_sent_as_a_text_field_is_a_missing_file(self, client: Client) -> None:
        with MultipartWriter("form-data") as mp:
            mp.append("not a file").set_content_disposition("form-data", name="file")
        resp = await client.post(files_url("1.0"), data=mp, headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Missing uploaded file"})

    async def test_json_or_empty_body_is_a_missing_file(self, client: Client) -> None:
        resp = await client.post(files_url("1.0"), json={"name": "x"}, headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Missing uploaded file"})
        resp = await client.post(files_url("1.0"), headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Missing uploaded file"})

    async def test_other_body_types_are_415(self, client: Client) -> None:
        resp = await client.post(
            files_url("1.0"), data=b"raw", headers={**bearer(), "Content-Type": "text/plain; charset=utf-8"}
        )
        await assert_api_error(resp, 415, {"detail": 'Unsupported media type "text/plain; charset=utf-8" in request.'})

    @pytest.mark.parametrize(("name", "filename"), [("", "a.js"), ("file", "a.js"), (None, "file")])
    async def test_empty_or_placeholder_name_is_400(self, client: Client, name: str | None, filename: str) -> None:
        resp = await upload(client, name=name, filename=filename)
        await assert_api_error(resp, 400, {"detail": "File name must be specified"})

    @pytest.mark.parametrize("name", ["~/a\tb.js", "~/a\nb.js", "~/dir/a\\b.js", "~/x\vy.js", "~/x\fy.js"])
    async def test_special_whitespace_in_the_basename_is_400(self, client: Client, name: str) -> None:
        resp = await upload(client, name=name)
        await assert_api_error(resp, 400, {"detail": "File name must not contain special whitespace characters"})

    async def test_special_whitespace_outside_the_basename_passes(self, client: Client) -> None:
        # Sentry checks only the text after the last slash.
        resp = await upload(client, name="http://exa\tmple.com/app.js")
        assert resp.status == 201

    async def test_header_without_a_colon_is_400(self, client: Client) -> None:
        resp = await upload(client, headers=["X-Good:1", "NoColonHere"])
        await assert_api_error(resp, 400, {"detail": "header value was not formatted correctly"})

    async def test_header_value_with_special_whitespace_is_400(self, client: Client) -> None:
        resp = await upload(client, headers=["X-Foo:a\tb"])
        await assert_api_error(resp, 400, {"detail": "header value must not contain special whitespace characters"})

    async def test_header_errors_come_before_the_duplicate_check(self, client: Client) -> None:
        assert (await upload(client)).status == 201
        resp = await upload(client, headers=["broken"])
        await assert_api_error(resp, 400, {"detail": "header value was not formatted correctly"})

    async def test_dist_longer_than_sentrys_column_is_400(self, client: Client) -> None:
        resp = await upload(client, dist="d" * 65)
        await assert_api_error(resp, 400, {"detail": "dist must be at most 64 characters"})
        assert (await upload(client, dist="d" * 64)).status == 201


@pytest.mark.usefixtures("release")
class TestIdentity:
    async def test_same_release_name_and_dist_is_409(self, client: Client) -> None:
        assert (await upload(client, b"one")).status == 201
        resp = await upload(client, b"two")
        await assert_api_error(resp, 409, {"detail": "A file matching this name already exists for the given release"})

    async def test_dist_is_part_of_the_identity(self, client: Client) -> None:
        assert (await upload(client)).status == 201
        assert (await upload(client, dist="d1")).status == 201
        assert (await upload(client, dist="d2")).status == 201
        assert (await upload(client, dist="d1")).status == 409

    async def test_conflict_leaves_no_blob_behind(self, client: Client, config: Config) -> None:
        assert (await upload(client, b"first")).status == 201
        assert (await upload(client, b"different bytes")).status == 409
        assert stored_sha1s(config) == [sha1(b"first")]
        assert temp_files(config) == []

    async def test_twenty_concurrent_uploads_of_one_ident_give_exactly_one_201(
        self, client: Client, config: Config
    ) -> None:
        results = await asyncio.gather(*(upload(client, f"body {i}".encode(), dist="d") for i in range(20)))
        statuses = sorted(r.status for r in results)
        assert statuses == [201] + [409] * 19
        assert len(stored_sha1s(config)) == 1
        assert temp_files(config) == []

    async def test_same_bytes_under_two_names_share_one_blob(self, client: Client, config: Config) -> None:
        a = await (await upload(client, b"shared", name="~/a.js")).json()
        b = await (await upload(client, b"shared", name="~/b.js")).json()
        assert a["id"] != b["id"] and a["sha1"] == b["sha1"]
        assert stored_sha1s(config) == [sha1(b"shared")]

    async def test_client_strings_never_become_paths(self, client: Client, config: Config) -> None:
        resp = await upload(client, b"evil", name="../../../../outside.js", filename="../../etc/passwd")
        assert resp.status == 201
        data_dir_files = {p.relative_to(config.data_dir).as_posix() for p in config.data_dir.rglob("*")}
        assert all("outside" not in f and "passwd" not in f for f in data_dir_files)
        assert not (config.data_dir.parent / "outside.js").exists()
        assert stored_sha1s(config) == [sha1(b"evil")]


class TestReleaseLookup:
    async def test_unknown_release_is_404_at_both_scopes(self, client: Client) -> None:
        not_found = {"detail": "The requested resource does not exist"}
        await assert_api_error(await upload(client, version="nope"), 404, not_found)
        await assert_api_error(await upload(client, version="nope", project=None), 404, not_found)

    async def test_release_not_linked_to_the_project_is_404(self, client: Client) -> None:
        await create_release(client, "2.0", projects=["other"])
        resp = await upload(client, version="2.0", project="web")
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
        assert (await upload(client, version="2.0", project="other")).status == 201

    async def test_version_is_percent_decoded_as_a_path_segment(self, client: Client) -> None:
        await create_release(client, "web@1.0+b.5#x?y%z&w=1")
        resp = await client.post(
            "/api/0/projects/acme/web/releases/web@1.0%2Bb.5%23x%3Fy%25z&w=1/files/",
            data=upload_form(b"x"),
            headers=bearer(),
        )
        assert resp.status == 201, await resp.text()
        # `+` in a path is a plus, never a space.
        await create_release(client, "1.0 b")
        resp = await client.post(
            "/api/0/projects/acme/web/releases/1.0+b/files/",
            data=upload_form(b"x"),
            headers=bearer(),
        )
        assert resp.status == 404


@pytest.mark.usefixtures("release")
class TestLimitsAndHostileBodies:
    async def test_file_exactly_at_the_limit_is_accepted(self, client: Client, config: Config) -> None:
        data = b"a" * config.max_file_size
        resp = await upload(client, data)
        assert resp.status == 201
        assert (await resp.json())["size"] == config.max_file_size

    async def test_one_byte_over_the_limit_is_413_and_leaves_no_temp_file(self, client: Client, config: Config) -> None:
        resp = await upload(client, b"a" * (config.max_file_size + 1))
        await assert_api_error(resp, 413, {"detail": f"File too large: the limit is {config.max_file_size} bytes"})
        assert temp_files(config) == []
        assert stored_sha1s(config) == []

    async def test_oversize_text_field_is_413(self, make_client: ClientFactory, config: Config) -> None:
        # A data dir of its own: the class's default server owns the test's (invariant 10).
        client = await make_client(config.with_overrides(max_field_size=100, data_dir=config.data_dir.with_name("own")))
        await create_release(client)
        resp = await upload(client, name="~/" + "n" * 200)
        await assert_api_error(resp, 413, {"detail": "Form field 'name' too large: the limit is 100 bytes"})

    async def test_too_many_parts_is_413(self, make_client: ClientFactory, config: Config) -> None:
        config = config.with_overrides(max_parts=5, data_dir=config.data_dir.with_name("own"))
        client = await make_client(config)
        await create_release(client)
        resp = await upload(client, headers=[f"X-{i}:{i}" for i in range(10)])
        await assert_api_error(resp, 413, {"detail": "Too many parts in the request: the limit is 5 parts"})
        assert temp_files(config) == []

    async def test_missing_boundary_is_400(self, client: Client) -> None:
        resp = await client.post(
            files_url("1.0"), data=b"whatever", headers={**bearer(), "Content-Type": "multipart/form-data"}
        )
        await assert_api_error(
            resp, 400, {"detail": "Multipart form parse error - Invalid boundary in multipart: None"}
        )

    async def test_truncated_multipart_is_400_and_leaves_no_temp_file(self, client: Client, config: Config) -> None:
        body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.js"\r\n\r\npartial data'
        resp = await client.post(
            files_url("1.0"), data=body, headers={**bearer(), "Content-Type": "multipart/form-data; boundary=b"}
        )
        assert resp.status == 400
        assert (await resp.json())["detail"].startswith("Multipart form parse error - ")
        assert temp_files(config) == []

    async def test_a_second_file_part_replaces_the_first_without_leaking_it(
        self, client: Client, config: Config
    ) -> None:
        form = aiohttp.FormData()
        form.add_field("file", b"first", filename="a.js")
        form.add_field("file", b"second", filename="b.js")
        resp = await client.post(files_url("1.0"), data=form, headers=bearer())
        body = await resp.json()
        # Django hands Sentry the last `file` part.
        assert (body["name"], body["sha1"]) == ("b.js", sha1(b"second"))
        assert temp_files(config) == []
        assert stored_sha1s(config) == [sha1(b"second")]

    async def test_a_charset_field_is_an_ordinary_field_as_in_django(self, client: Client) -> None:
        # aiohttp alone would take a first `_charset_` part as the default charset of the
        # fields after it (RFC 7578 section 4.6); Django decodes every field as UTF-8.
        body = (
            b'--b\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\niso-8859-1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n~/caf\xc3\xa9.js\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.js"\r\n\r\nx\r\n--b--\r\n'
        )
        resp = await client.post(
            files_url("1.0"), data=body, headers={**bearer(), "Content-Type": "multipart/form-data; boundary=b"}
        )
        assert resp.status == 201
        assert (await resp.json())["name"] == "~/café.js"

    async def test_client_disconnect_mid_upload_leaves_no_row_and_no_temp_file(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        # Small batches, so the temp file exists well before the body ends; a data dir of its
        # own, as the class's default server owns the test's (invariant 10).
        config = config.with_overrides(
            write_batch_size=8 * KiB, max_file_size=1024 * KiB, data_dir=config.data_dir.with_name("own")
        )
        client = await make_client(config)
        catalog = client.app[catalog_key]
        await create_release(client)
        body_head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.js"\r\n\r\n' + b"x" * (32 * KiB)
        request = (
            f"POST {files_url('1.0')} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body_head) + 100000}\r\n\r\n"
        ).encode()
        server = client.server
        _reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(request + body_head)
        await writer.drain()
        # The multipart reader keeps one read of look-ahead: a second piece lets the first through.
        await asyncio.sleep(0.05)
        writer.write(b"y" * (32 * KiB))
        await writer.drain()
        # Wait until the server has started writing the temp file, then vanish.
        for _ in range(200):
            if temp_files(config):
                break
            await asyncio.sleep(0.01)
        assert temp_files(config), "the upload never reached the temp file"
        writer.close()
        await writer.wait_closed()
        for _ in range(300):
            if not temp_files(config):
                break
            await asyncio.sleep(0.01)
        assert temp_files(config) == []
        assert (await catalog.check()).release_files == 0
        # The server keeps serving.
        assert (await upload(client)).status == 201


SMALL = 1 * KiB  # under the test config's 16 KiB write batch: kept in memory until the commit
LARGE = 48 * KiB  # over it: streamed to a temp file in batches


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["in-memory", "streamed"])
async def test_blob_writes_and_hashing_run_off_the_loop_thread(
    client: Client, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    await create_release(client)
    worker_threads: set[int] = set()
    engine = type(client.app[blobstore_key])
    real_write, real_store_bytes = TempBlob.write, engine.put_small

    def recording_write(self: TempBlob, data: bytes) -> None:
        worker_threads.add(threading.get_ident())
        real_write(self, data)

    def recording_store_bytes(self: BlobStore, data: bytes) -> StoredBlob:
        worker_threads.add(threading.get_ident())
        return real_store_bytes(self, data)

    monkeypatch.setattr(TempBlob, "write", recording_write)
    monkeypatch.setattr(engine, "put_small", recording_store_bytes)
    data = bytes(range(256)) * (size // 256)
    resp = await upload(client, data)
    assert resp.status == 201
    assert (await resp.json())["sha1"] == sha1(data)
    assert worker_threads, "the spy saw no writes"
    assert threading.get_ident() not in worker_threads


class TestInMemoryPath:
    """Parts that end within one write batch are hashed and written only at the commit."""

    @pytest.mark.parametrize("delta", [-1, 0, 1])
    async def test_sizes_around_the_write_batch_store_the_exact_bytes(
        self, client: Client, config: Config, delta: int
    ) -> None:
        await create_release(client)
        data = bytes(range(251)) * (config.write_batch_size // 251 + 1)
        data = data[: config.write_batch_size + delta]
        resp = await upload(client, data)
        body = await resp.json()
        assert resp.status == 201, body
        assert (body["size"], body["sha1"]) == (len(data), sha1(data))
        download = await client.get(f"{files_url('1.0')}{body['id']}/?download=1", headers=bearer())
        assert await download.read() == data
        assert temp_files(config) == []

    async def test_bytes_already_stored_are_not_written_again(
        self, client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await create_release(client)
        assert (await upload(client, b"same bytes", name="~/a.js")).status == 201
        temps: list[TempBlob] = []
        real_init = TempBlob.__init__

        def recording_init(self: TempBlob, *args: Any, **kwargs: Any) -> None:
            temps.append(self)
            real_init(self, *args, **kwargs)

        monkeypatch.setattr(TempBlob, "__init__", recording_init)
        resp = await upload(client, b"same bytes", name="~/b.js")
        assert resp.status == 201
        assert (await resp.json())["sha1"] == sha1(b"same bytes")
        assert temps == [], "a second copy of stored bytes opened a temp file"
        assert stored_sha1s(config) == [sha1(b"same bytes")]

    async def test_a_conflict_keeps_no_bytes_and_on_disk_never_hashes_or_writes_them(
        self, client: Client, config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await create_release(client)
        assert (await upload(client, b"first", name="~/a.js")).status == 201
        calls: list[bytes] = []
        store = client.app[blobstore_key]
        if store.content_addressed:
            # The batch sees the taken name before any blob is written.
            monkeypatch.setattr(type(store), "put_small", lambda self, data: calls.append(data))
        # A keyed store's object is written before the batch looks (upload_batch.py), and
        # the one a refused upload wrote is deleted after the commit.
        resp = await upload(client, b"second", name="~/a.js")
        assert resp.status == 409
        assert calls == []
        assert stored_sha1s(config) == [sha1(b"first")]

    @pytest.mark.disk_only  # the failure is the disk engine's: its put_small stages a temp file
    async def test_a_failed_blob_write_leaves_no_row_no_blob_and_no_temp_file(
        self, client: Client, config: Config, catalog: SqliteCatalog, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await create_release(client)
        real_finish = TempBlob.finish

        def failing_finish(self: TempBlob) -> StoredBlob:
            real_finish(self)
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(TempBlob, "finish", failing_finish)
        resp = await upload(client, b"never stored")
        assert resp.status == 500
        monkeypatch.undo()
        assert (await catalog.check()).release_files == 0
        assert stored_sha1s(config) == []
        assert temp_files(config) == []
        # The same name can be uploaded once the disk behaves.
        assert (await upload(client, b"never stored")).status == 201


async def test_wrong_method_is_405_with_drfs_body(client: Client) -> None:
    resp = await client.patch(files_url("1.0"), headers=bearer())
    await assert_api_error(resp, 405, {"detail": 'Method "PATCH" not allowed.'})
