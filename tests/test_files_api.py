"""Release files after upload: list and pagination, detail, download, rename, delete
(Sentry's release-file endpoints)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relserver import auth
from relserver.config import Config
from relserver.sentry import encode_archive_entry_id

from .conftest import (
    Client,
    assert_api_error,
    bearer,
    create_release,
    files_url,
    mint_token,
    sha1,
    stored_sha1s,
    upload,
)

NOT_FOUND = {"detail": "The requested resource does not exist"}
SCOPES = [pytest.param("web", id="project"), pytest.param(None, id="organization")]


def file_url(file_id: str, *, version: str = "1.0", project: str | None = "web") -> str:
    return f"{files_url(version, project=project)}{file_id}/"


async def upload_json(client: Client, data: bytes = b"x", **form: Any) -> dict[str, Any]:
    resp = await upload(client, data, **form)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def get(client: Client, url: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = {**(bearer(token) if token else bearer()), **kwargs.pop("headers", {})}
    return await client.get(url, headers=headers, **kwargs)


@pytest.fixture
async def release(client: Client) -> dict[str, Any]:
    return await create_release(client)


@pytest.mark.usefixtures("release")
class TestList:
    @pytest.mark.parametrize("project", SCOPES)
    async def test_files_list_by_name_with_sentrys_keys(self, client: Client, project: str | None) -> None:
        for name in ["~/b.js", "~/a.js", "~/c.js"]:
            await upload_json(client, name.encode(), name=name)
        resp = await get(client, files_url("1.0", project=project))
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        body = await resp.json()
        assert [f["name"] for f in body] == ["~/a.js", "~/b.js", "~/c.js"]
        assert all(list(f) == ["id", "name", "dist", "headers", "size", "sha1", "dateCreated"] for f in body)

    async def test_walking_more_than_250_files_follows_every_link(self, client: Client) -> None:
        names = sorted(f"~/f{i:03}.js" for i in range(260))
        await asyncio.gather(*(upload(client, n.encode(), name=n) for n in names))
        host = f"http://{client.server.host}:{client.server.port}"
        base = f"{host}/api/0/projects/acme/web/releases/1.0/files/?"
        seen: list[str] = []
        url = files_url("1.0")
        for page in range(3):
            resp = await get(client, url)
            seen += [f["name"] for f in await resp.json()]
            more = "true" if page < 2 else "false"
            assert resp.headers["Link"] == (
                f'<{base}&cursor=100:{page - 1}:1>; rel="previous"; results="{"true" if page else "false"}"; '
                f'cursor="100:{page - 1}:1", '
                f'<{base}&cursor=100:{page + 1}:0>; rel="next"; results="{more}"; cursor="100:{page + 1}:0"'
            )
            url = f"{files_url('1.0')}?cursor=100:{page + 1}:0"
        assert seen == names

    async def test_other_query_parameters_stay_in_the_links(self, client: Client) -> None:
        for i in range(5):
            await upload_json(client, name=f"~/q{i}.js")
        resp = await get(client, f"{files_url('1.0')}?per_page=2&query=Q&query=zz&cursor=2:1:0")
        assert [f["name"] for f in await resp.json()] == ["~/q2.js", "~/q3.js"]
        link = resp.headers["Link"]
        assert "/files/?per_page=2&query=Q&query=zz&cursor=2:0:1>" in link
        assert 'rel="next"; results="true"; cursor="2:2:0"' in link

    async def test_cursor_offset_is_offset_times_value(self, client: Client) -> None:
        for name in ["~/1.js", "~/2.js", "~/3.js"]:
            await upload_json(client, name=name)

        async def names(query: str) -> list[str]:
            return [f["name"] for f in await (await get(client, f"{files_url('1.0')}?{query}")).json()]

        # Sentry's own test: with per_page=1, cursor 0:1:0 is the first item and 1:1:0 the second.
        assert await names("per_page=1&cursor=0:1:0") == ["~/1.js"]
        assert await names("per_page=1&cursor=1:1:0") == ["~/2.js"]
        assert await names("per_page=1&cursor=2:1:0") == ["~/3.js"]
        assert await names("per_page=2&cursor=1.0:2:0") == ["~/3.js"]

    @pytest.mark.parametrize(
        ("query", "detail"),
        [
            ("per_page=abc", "Invalid per_page parameter."),
            ("per_page=101", "Invalid per_page value. Cannot exceed 100."),
            ("per_page=0", "Limit must be positive"),
            ("cursor=abc", "Invalid cursor parameter."),
            ("cursor=1:2", "Invalid cursor parameter."),
            ("cursor=a:1:0", "Invalid cursor parameter."),
            ("cursor=100:-1:1", "Pagination offset cannot be negative"),
            ("cursor=100:200:0", "Pagination offset too large"),
            ("cursor=1:19999:0", None),
        ],
    )
    async def test_pagination_errors_are_sentrys(self, client: Client, query: str, detail: str | None) -> None:
        resp = await get(client, f"{files_url('1.0')}?{query}")
        if detail is None:
            assert resp.status == 200
            assert await resp.json() == []
        else:
            await assert_api_error(resp, 400, {"detail": detail})

    async def test_query_is_a_case_insensitive_substring_ored(self, client: Client) -> None:
        for name in ["~/App.js", "~/app.js.map", "~/vendor.js", "~/ÄPFEL.js"]:
            await upload_json(client, name.encode(), name=name)

        async def names(query: str) -> list[str]:
            return [f["name"] for f in await (await get(client, f"{files_url('1.0')}?{query}")).json()]

        assert await names("query=APP") == ["~/App.js", "~/app.js.map"]
        assert await names("query=map&query=VENDOR") == ["~/app.js.map", "~/vendor.js"]
        assert await names("query=äpfel") == ["~/ÄPFEL.js"]
        assert await names("query=nothing") == []

    async def test_query_index_follows_renames_deletes_and_short_terms(self, client: Client) -> None:
        a = await upload_json(client, b"a", name="~/alpha.js")
        b = await upload_json(client, b"b", name="~/beta.js")

        async def names(query: str) -> list[str]:
            return [f["name"] for f in await (await get(client, f"{files_url('1.0')}?{query}")).json()]

        assert await names("query=alpha") == ["~/alpha.js"]
        await client.put(file_url(a["id"]), json={"name": "~/gamma.js"}, headers=bearer())
        assert await names("query=alpha") == []
        assert await names("query=gamma") == ["~/gamma.js"]
        await client.delete(file_url(b["id"]), headers=bearer())
        assert await names("query=beta") == []
        # Terms under three characters cannot use the trigram index; they still match.
        assert await names("query=ga") == ["~/gamma.js"]
        assert await names("query=a%22b") == []  # a quote in the term is data, not syntax

    async def test_checksum_is_exact_and_combines_with_query(self, client: Client) -> None:
        for name, data in [("~/a.js", b"A"), ("~/b.js", b"B"), ("~/c.map", b"A")]:
            await upload_json(client, data, name=name)

        async def names(query: str) -> list[str]:
            return [f["name"] for f in await (await get(client, f"{files_url('1.0')}?{query}")).json()]

        assert await names(f"checksum={sha1(b'A')}") == ["~/a.js", "~/c.map"]
        assert await names(f"checksum={sha1(b'A')}&checksum={sha1(b'B')}") == ["~/a.js", "~/b.js", "~/c.map"]
        assert await names(f"checksum={sha1(b'A')[:10]}") == []
        assert await names(f"checksum={sha1(b'A')}&query=.js") == ["~/a.js"]

    async def test_unknown_release_is_404(self, client: Client) -> None:
        await assert_api_error(await get(client, files_url("nope")), 404, NOT_FOUND)


@pytest.mark.usefixtures("release")
class TestDetailAndDownload:
    @pytest.mark.parametrize("project", SCOPES)
    async def test_detail_is_the_json_without_download(self, client: Client, project: str | None) -> None:
        uploaded = await upload_json(client, b"abc", dist="d1")
        resp = await get(client, file_url(uploaded["id"], project=project))
        assert await resp.json() == uploaded

    @pytest.mark.parametrize("param", ["download", "download=1", "download=0", "download=false"])
    async def test_download_needs_only_the_parameters_presence(self, client: Client, param: str) -> None:
        uploaded = await upload_json(client, b"the bytes")
        resp = await get(client, f"{file_url(uploaded['id'])}?{param}")
        assert resp.status == 200
        assert await resp.read() == b"the bytes"
        assert resp.headers["Content-Length"] == "9"
        assert resp.headers["ETag"] == f'"{sha1(b"the bytes")}"'

    async def test_content_type_comes_only_from_a_lowercase_header(self, client: Client) -> None:
        plain = await upload_json(client, name="~/plain.js", content_type="application/javascript")
        typed = await upload_json(client, name="~/typed.js", headers=["content-type: text/javascript"])
        resp = await get(client, f"{file_url(plain['id'])}?download")
        # Uploads store `Content-Type`, which Sentry's download ignores (its own test expects this).
        assert resp.headers["Content-Type"] == "application/octet-stream"
        resp = await get(client, f"{file_url(typed['id'])}?download")
        assert resp.headers["Content-Type"] == "text/javascript"

    async def test_content_disposition_is_the_collapsed_basename(self, client: Client) -> None:
        uploaded = await upload_json(client, name="~/x.js")
        weird = "  http://example.com/appli\n\rcatios n.js\n\n\r  "
        resp = await client.put(file_url(uploaded["id"]), json={"name": weird}, headers=bearer())
        assert resp.status == 200
        resp = await get(client, f"{file_url(uploaded['id'])}?download")
        # Sentry's test: this name downloads as "appli catios n.js".
        assert resp.headers["Content-Disposition"] == 'attachment; filename="appli catios n.js"'

    async def test_range_requests_get_206(self, client: Client) -> None:
        data = bytes(range(100))
        uploaded = await upload_json(client, data)
        url = f"{file_url(uploaded['id'])}?download"
        for header, expected, content_range in [
            ("bytes=10-19", data[10:20], "bytes 10-19/100"),
            ("bytes=90-", data[90:], "bytes 90-99/100"),
            ("bytes=-5", data[-5:], "bytes 95-99/100"),
            ("bytes=95-500", data[95:], "bytes 95-99/100"),
        ]:
            resp = await get(client, url, headers={"Range": header})
            assert resp.status == 206, header
            assert resp.headers["Content-Range"] == content_range
            assert await resp.read() == expected

    async def test_unsatisfiable_range_is_416(self, client: Client) -> None:
        uploaded = await upload_json(client, b"short")
        resp = await get(client, f"{file_url(uploaded['id'])}?download", headers={"Range": "bytes=10-20"})
        assert resp.status == 416
        assert resp.headers["Content-Range"] == "bytes */5"

    async def test_etag_answers_304_and_if_range_guards_ranges(self, client: Client) -> None:
        uploaded = await upload_json(client, b"0123456789")
        url = f"{file_url(uploaded['id'])}?download"
        etag = f'"{uploaded["sha1"]}"'
        resp = await get(client, url, headers={"If-None-Match": etag})
        assert resp.status == 304
        assert await resp.read() == b""
        assert (await get(client, url, headers={"If-None-Match": '"other"'})).status == 200
        resp = await get(client, url, headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
        assert (resp.status, await resp.read()) == (200, b"0123456789")
        resp = await get(client, url, headers={"Range": "bytes=0-1", "If-Range": etag})
        assert (resp.status, await resp.read()) == (206, b"01")

    async def test_head_sends_headers_only(self, client: Client) -> None:
        uploaded = await upload_json(client, b"0123456789")
        resp = await client.head(f"{file_url(uploaded['id'])}?download", headers=bearer())
        assert resp.status == 200
        assert resp.headers["Content-Length"] == "10"

    async def test_empty_file_downloads_empty(self, client: Client) -> None:
        uploaded = await upload_json(client, b"")
        resp = await get(client, f"{file_url(uploaded['id'])}?download")
        assert (resp.status, await resp.read()) == (200, b"")

    async def test_org_tokens_never_download_at_project_scope_and_a_denied_download_is_an_empty_403(
        self, client: Client
    ) -> None:
        uploaded = await upload_json(client)
        org_token = await mint_token(
            client, scopes=auth.ORG_TOKEN_SCOPES, organization="acme", token=auth.new_org_token(url="x", org="acme")
        )
        releases_token = await mint_token(client, scopes=["project:releases"])
        writer = await mint_token(client, scopes=["project:write"])
        reader = await mint_token(client, scopes=["project:read"])
        cases = [
            (org_token, "web", 403),  # org auth tokens never download at project scope
            (releases_token, "web", 200),
            (releases_token, None, 403),  # the organization endpoint wants project:write exactly
            (writer, None, 200),
            (reader, "web", 403),
        ]
        for token, project, status in cases:
            resp = await get(client, f"{file_url(uploaded['id'], project=project)}?download", token=token)
            assert resp.status == status, (token[:10], project)
            if status == 403:
                # Sentry's denied download is an empty 403.
                assert await resp.read() == b""
                assert "Content-Type" not in resp.headers
            # The JSON detail stays readable for everyone with a read scope.
            assert (await get(client, file_url(uploaded["id"], project=project), token=token)).status == 200

    async def test_missing_file_is_404_before_the_download_check(self, client: Client) -> None:
        reader = await mint_token(client, scopes=["project:read"])
        await assert_api_error(await get(client, f"{file_url('999')}?download", token=reader), 404, NOT_FOUND)

    @pytest.mark.parametrize("file_id", ["999", "bm9wZQ==", "!!!", encode_archive_entry_id(None, "~/a.js")])
    async def test_unknown_ids_are_404(self, client: Client, file_id: str) -> None:
        await assert_api_error(await get(client, file_url(file_id)), 404, NOT_FOUND)

    async def test_file_of_another_release_is_404(self, client: Client) -> None:
        await create_release(client, "2.0")
        other = await upload_json(client, version="2.0")
        await assert_api_error(await get(client, file_url(other["id"])), 404, NOT_FOUND)


@pytest.mark.usefixtures("release")
class TestRename:
    async def test_rename_answers_the_updated_json_and_moves_the_identity(self, client: Client) -> None:
        uploaded = await upload_json(client, b"one", name="~/old.js", dist="d1")
        resp = await client.put(file_url(uploaded["id"]), json={"name": "  ~/new.js  "}, headers=bearer())
        assert resp.status == 200
        body = await resp.json()
        assert body == {**uploaded, "name": "~/new.js"}
        # The old (name, dist) is free again, the new one is taken.
        assert (await upload(client, b"two", name="~/old.js", dist="d1")).status == 201
        assert (await upload(client, b"three", name="~/new.js", dist="d1")).status == 409

    async def test_rename_onto_an_existing_name_and_dist_is_409(self, client: Client) -> None:
        first = await upload_json(client, name="~/a.js", dist="d1")
        await upload_json(client, name="~/b.js", dist="d1")
        await upload_json(client, name="~/b.js")
        resp = await client.put(file_url(first["id"]), json={"name": "~/b.js"}, headers=bearer())
        await assert_api_error(resp, 409, {"detail": "A file matching this name already exists for the given release"})
        # Same name without the dist is another identity: the rename keeps the file's dist.
        free = await upload_json(client, name="~/c.js", dist="d2")
        resp = await client.put(file_url(free["id"]), json={"name": "~/b.js"}, headers=bearer())
        assert resp.status == 200

    @pytest.mark.parametrize(
        ("body", "errors"),
        [
            ({}, {"name": ["This field is required."]}),
            ({"name": ""}, {"name": ["This field may not be blank."]}),
            ({"name": "   "}, {"name": ["This field may not be blank."]}),
            ({"name": None}, {"name": ["This field may not be null."]}),
            ({"name": "n" * 201}, {"name": ["Ensure this field has no more than 200 characters."]}),
            (["~/x.js"], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
        ],
    )
    async def test_rename_validation_is_drfs(self, client: Client, body: Any, errors: dict[str, Any]) -> None:
        uploaded = await upload_json(client)
        resp = await client.put(file_url(uploaded["id"]), json=body, headers=bearer())
        await assert_api_error(resp, 400, errors)

    async def test_non_integer_id_is_400_before_anything_else(self, client: Client) -> None:
        resp = await client.put(file_url("bm9wZQ=="), json={}, headers=bearer())
        await assert_api_error(resp, 400, {"detail": "Can only update release files with integer IDs"})

    async def test_unknown_integer_id_is_404_before_validation(self, client: Client) -> None:
        resp = await client.put(file_url("999"), json={}, headers=bearer())
        await assert_api_error(resp, 404, NOT_FOUND)

    async def test_rename_accepts_a_form_body(self, client: Client) -> None:
        uploaded = await upload_json(client)
        resp = await client.put(file_url(uploaded["id"]), data={"name": "~/form.js"}, headers=bearer())
        assert (await resp.json())["name"] == "~/form.js"


@pytest.mark.usefixtures("release")
class TestDelete:
    async def test_delete_is_204_and_frees_an_unshared_blob(self, client: Client, config: Config) -> None:
        uploaded = await upload_json(client, b"gone")
        resp = await client.delete(file_url(uploaded["id"]), headers=bearer())
        assert resp.status == 204
        assert await resp.read() == b""
        await assert_api_error(await get(client, file_url(uploaded["id"])), 404, NOT_FOUND)
        assert stored_sha1s(config) == []

    async def test_a_shared_blob_stays_until_its_last_file_goes(self, client: Client, config: Config) -> None:
        a = await upload_json(client, b"shared", name="~/a.js")
        b = await upload_json(client, b"shared", name="~/b.js")
        assert (await client.delete(file_url(a["id"]), headers=bearer())).status == 204
        assert stored_sha1s(config) == [sha1(b"shared")]
        resp = await get(client, f"{file_url(b['id'])}?download")
        assert await resp.read() == b"shared"
        assert (await client.delete(file_url(b["id"]), headers=bearer())).status == 204
        assert stored_sha1s(config) == []

    async def test_delete_then_reupload_of_the_same_bytes_works(self, client: Client) -> None:
        a = await upload_json(client, b"again")
        assert (await client.delete(file_url(a["id"]), headers=bearer())).status == 204
        b = await upload_json(client, b"again")
        assert await (await get(client, f"{file_url(b['id'])}?download")).read() == b"again"

    async def test_deleting_unknown_ids_is_404_and_an_unindexed_url_has_an_empty_body(self, client: Client) -> None:
        await assert_api_error(await client.delete(file_url("999"), headers=bearer()), 404, NOT_FOUND)
        await assert_api_error(await client.delete(file_url("!!!"), headers=bearer()), 404, NOT_FOUND)
        unknown_dist = encode_archive_entry_id("nodist", "~/a.js")
        await assert_api_error(await client.delete(file_url(unknown_dist), headers=bearer()), 404, NOT_FOUND)
        # No artifact index holds the URL: Sentry's empty-bodied 404.
        resp = await client.delete(file_url(encode_archive_entry_id(None, "~/a.js")), headers=bearer())
        assert (resp.status, await resp.read()) == (404, b"")

    @pytest.mark.parametrize("scope", ["project:write", "org:ci", "project:read"])
    async def test_delete_needs_admin_or_releases_scope(self, client: Client, scope: str) -> None:
        uploaded = await upload_json(client)
        token = await mint_token(client, scopes=[scope])
        resp = await client.delete(file_url(uploaded["id"]), headers=bearer(token))
        await assert_api_error(resp, 403, {"detail": "You do not have permission to perform this action."})


@pytest.mark.usefixtures("release")
class TestDeleteAll:
    @pytest.mark.parametrize("project", SCOPES)
    async def test_every_file_of_the_release_goes_and_the_release_stays(
        self, client: Client, config: Config, project: str | None
    ) -> None:
        await create_release(client, "2.0")
        keep = await upload_json(client, b"other release", version="2.0")
        for i in range(3):
            await upload_json(client, f"{i}".encode(), name=f"~/{i}.js")
        base = f"/api/0/projects/acme/{project}" if project else "/api/0/organizations/acme"
        resp = await client.delete(f"{base}/files/source-maps/?name=1.0", headers=bearer())
        assert (resp.status, await resp.read()) == (204, b"")
        assert await (await get(client, files_url("1.0"))).json() == []
        assert stored_sha1s(config) == [keep["sha1"]]

    async def test_missing_name_is_an_empty_404_and_unknown_release_says_so(self, client: Client) -> None:
        resp = await client.delete("/api/0/projects/acme/web/files/source-maps/", headers=bearer())
        assert (resp.status, await resp.read()) == (404, b"")
        resp = await client.delete("/api/0/projects/acme/web/files/source-maps/?name=nope", headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The provided release does not exist"})
