"""No client input yields a 5xx (DESIGN invariant 9): each class of input that once crashed.

Undecodable header bytes go over a raw socket, since no HTTP client library sends them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from relserver import auth, sentry

from .bundle_helpers import chunk_form, make_bundle, upload_bundle
from .conftest import Client, assert_api_error, bearer, create_release, sha1, stored_sha1s, upload
from .server_process import running_server

ORG_URL = "/api/0/organizations/acme"
PROJECT_URL = "/api/0/projects/acme/web"


async def raw_request(
    client: Client, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with header bytes exactly as given; (status, headers, body)."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {server.host}:{server.port}".encode()]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), parsed, payload


def admin_header() -> tuple[bytes, bytes]:
    return b"Authorization", bearer()["Authorization"].encode()


class TestUndecodableHeaders:
    @pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer sntrys_\xff", b"\xff Bearer"])
    async def test_authorization_bytes_that_are_not_utf8_answer_401(self, client: Client, value: bytes) -> None:
        status, headers, body = await raw_request(client, "GET", f"{ORG_URL}/releases/", [(b"Authorization", value)])
        assert (status, json.loads(body)) == (401, {"detail": auth.INVALID_CHARACTERS})
        assert headers["WWW-Authenticate"] == auth.WWW_AUTHENTICATE

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", f"{ORG_URL}/releases/"),
            ("POST", f"{PROJECT_URL}/releases/"),
            ("PUT", f"{ORG_URL}/releases/1.0/"),
            ("POST", f"{PROJECT_URL}/releases/1.0/files/"),
            ("PUT", f"{PROJECT_URL}/releases/1.0/files/1/"),
            ("POST", f"{ORG_URL}/releases/1.0/deploys/"),
            ("POST", f"{ORG_URL}/chunk-upload/"),
            ("POST", f"{ORG_URL}/artifactbundle/assemble/"),
            ("POST", f"{ORG_URL}/releases/1.0/assemble/"),
        ],
    )
    @pytest.mark.parametrize("content_type", [b"application/\xff", b"multipart/form-data; boundary=\xff\xfe"])
    async def test_a_content_type_that_is_not_utf8_answers_415_on_every_post_and_put(
        self, client: Client, method: str, path: str, content_type: bytes
    ) -> None:
        await create_release(client, "1.0")
        status, headers, body = await raw_request(
            client, method, path, [admin_header(), (b"Content-Type", content_type)], b"{}"
        )
        shown = content_type.decode("latin-1")
        assert (status, headers["Content-Type"]) == (415, "application/json")
        assert json.loads(body) == {"detail": f'Unsupported media type "{shown}" in request.'}

    async def test_a_user_agent_that_is_not_utf8_is_stored_as_django_reads_it(self, client: Client) -> None:
        body = json.dumps({"version": "1.0", "projects": ["web"]}).encode()
        headers = [admin_header(), (b"Content-Type", b"application/json"), (b"User-Agent", b"cli/\xff\xfe")]
        status, _, answer = await raw_request(client, "POST", f"{ORG_URL}/releases/", headers, body)
        # WSGI hands Django header bytes as latin-1 (PEP 3333).
        assert (status, json.loads(answer)["userAgent"]) == (201, "cli/\xff\xfe")

    async def test_a_part_content_type_that_is_not_utf8_is_stored_as_django_reads_it(self, client: Client) -> None:
        await create_release(client, "1.0")
        body = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.js"\r\n'
            b"Content-Type: text/\xff\r\n\r\nabc\r\n--b--\r\n"
        )
        headers = [admin_header(), (b"Content-Type", b"multipart/form-data; boundary=b")]
        status, _, answer = await raw_request(client, "POST", f"{PROJECT_URL}/releases/1.0/files/", headers, body)
        assert (status, json.loads(answer)["headers"]) == (201, {"Content-Type": "text/\xff"})

    @pytest.mark.parametrize("host", [b"\xff\xfe", b"a b", b"<x>", b"example.com:80/path"])
    async def test_a_host_django_would_refuse_is_400_where_urls_are_built_from_it(
        self, client: Client, host: bytes
    ) -> None:
        await create_release(client, "1.0")
        for path in (f"{ORG_URL}/releases/", f"{ORG_URL}/chunk-upload/"):
            reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
            auth_line = b"Authorization: " + bearer()["Authorization"].encode()
            writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + auth_line)
            writer.write(b"\r\nConnection: close\r\n\r\n")
            response = await reader.read()
            writer.close()
            await writer.wait_closed()
            head, _, payload = response.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] == b"400", response
            assert json.loads(payload) == {"detail": sentry.INVALID_HOST}


class TestLoneSurrogates:
    """`"\\ud800"` parses to a lone surrogate, which nothing can store or encode (DRF refuses it)."""

    @pytest.mark.parametrize(
        ("method", "path", "body", "field"),
        [
            ("POST", f"{ORG_URL}/releases/", {"version": "\\ud800", "projects": ["web"]}, "version"),
            ("POST", f"{ORG_URL}/releases/", {"version": "2.0", "projects": ["w\\udfff"]}, "projects"),
            ("POST", f"{ORG_URL}/releases/", {"version": "2.0", "projects": ["web"], "ref": "\\ud800"}, "ref"),
            ("POST", f"{ORG_URL}/releases/", {"version": "2.0", "projects": ["web"], "url": "\\ud800"}, "url"),
            ("POST", f"{PROJECT_URL}/releases/", {"version": "\\udbff"}, "version"),
            ("PUT", f"{ORG_URL}/releases/1.0/", {"ref": "\\ud800"}, "ref"),
            ("PUT", f"{ORG_URL}/releases/1.0/", {"dateReleased": "\\ud800"}, "dateReleased"),
            ("POST", f"{ORG_URL}/releases/1.0/deploys/", {"environment": "\\ud800"}, "environment"),
            ("POST", f"{ORG_URL}/releases/1.0/deploys/", {"environment": "p", "name": "\\ud800"}, "name"),
            ("PUT", f"{PROJECT_URL}/releases/1.0/files/1/", {"name": "a\\ud800"}, "name"),
            ("POST", f"{ORG_URL}/releases/", {"version": "2.0", "projects": ["web"], "x": {"y": ["\\ud800"]}}, "x"),
        ],
    )
    async def test_a_lone_surrogate_in_any_field_is_a_400_field_error(
        self, client: Client, method: str, path: str, body: dict[str, Any], field: str
    ) -> None:
        await create_release(client, "1.0")
        assert (await upload(client, b"x")).status == 201
        # json.dumps would escape the backslash; the wire must carry the bare \\uXXXX escape.
        raw = json.dumps(body).replace("\\\\u", "\\u")
        resp = await client.request(method, path, data=raw, headers={**bearer(), "Content-Type": "application/json"})
        code_point = int(raw.split("\\u")[1][:4], 16)
        await assert_api_error(resp, 400, {field: [sentry.surrogate_error(code_point)]})

    async def test_a_lone_surrogate_in_a_key_is_refused_without_echoing_it(self, client: Client) -> None:
        raw = '{"version": "2.0", "projects": ["web"], "\\ud800": 1}'
        resp = await client.post(
            f"{ORG_URL}/releases/", data=raw, headers={**bearer(), "Content-Type": "application/json"}
        )
        await assert_api_error(resp, 400, {"non_field_errors": [sentry.surrogate_error(0xD800)]})

    @pytest.mark.parametrize(
        ("field", "message"),
        [
            ("version", sentry.ARTIFACT_BUNDLE_FIELD_ERRORS["version"]),
            ("dist", sentry.ARTIFACT_BUNDLE_FIELD_ERRORS["dist"]),
            ("projects", sentry.ARTIFACT_BUNDLE_FIELD_ERRORS["projects"]),
        ],
    )
    async def test_a_lone_surrogate_in_an_assemble_body_is_the_fields_error(
        self, client: Client, field: str, message: str
    ) -> None:
        body: dict[str, Any] = {"checksum": "a" * 40, "chunks": [], "projects": ["web"], "version": "1.0"}
        body[field] = ["w\\ud800"] if field == "projects" else "v\\ud800"
        raw = json.dumps(body).replace("\\\\u", "\\u")
        resp = await client.post(
            f"{ORG_URL}/artifactbundle/assemble/", data=raw, headers={**bearer(), "Content-Type": "application/json"}
        )
        await assert_api_error(resp, 400, {"error": message})

    async def test_a_null_character_in_a_string_field_is_drfs_400(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG_URL}/releases/", json={"version": "a\x00b", "projects": ["web"]}, headers=bearer()
        )
        await assert_api_error(resp, 400, {"version": [sentry.FIELD_NULL_CHARACTERS]})


class TestDatesOutOfRange:
    @pytest.mark.parametrize("value", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
    async def test_a_date_with_no_utc_twin_is_drfs_out_of_range_400(self, client: Client, value: str) -> None:
        await create_release(client, "1.0")
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", f"{ORG_URL}/releases/", {"version": "2.0", "projects": ["web"], "dateReleased": value}),
            ("PUT", f"{ORG_URL}/releases/1.0/", {"dateReleased": value}),
            ("POST", f"{ORG_URL}/releases/1.0/deploys/", {"environment": "p", "dateStarted": value}),
            ("POST", f"{ORG_URL}/releases/1.0/deploys/", {"environment": "p", "dateFinished": value}),
        ]
        for method, path, body in cases:
            resp = await client.request(method, path, json=body, headers=bearer())
            (field,) = (k for k in body if k.startswith("date"))
            await assert_api_error(resp, 400, {field: [sentry.DATETIME_OUT_OF_RANGE]})

    async def test_a_date_before_year_1000_is_written_with_four_year_digits(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG_URL}/releases/",
            json={"version": "2.0", "projects": ["web"], "dateReleased": "0450-05-27T09:05:19.82198+10:07"},
            headers=bearer(),
        )
        assert (await resp.json())["dateReleased"] == "0450-05-26T22:58:19.821980Z"

    async def test_a_date_at_the_edge_of_the_range_is_kept(self, client: Client) -> None:
        resp = await client.post(
            f"{ORG_URL}/releases/",
            json={"version": "2.0", "projects": ["web"], "dateReleased": "9999-12-31T09:59:59-14:00"},
            headers=bearer(),
        )
        assert resp.status == 201
        assert (await resp.json())["dateReleased"] == "9999-12-31T23:59:59.000000Z"


LISTS = [
    f"{ORG_URL}/releases/",
    f"{PROJECT_URL}/releases/",
    f"{ORG_URL}/releases/1.0/files/",
    f"{PROJECT_URL}/releases/1.0/files/",
    f"{ORG_URL}/releases/1.0/deploys/",
    f"{PROJECT_URL}/files/artifact-bundles/",
]


class TestOverflowingNumbers:
    @pytest.mark.parametrize(
        "cursor", ["1.0e308:5:0", "100:9999999999999999999999:0", "1e308:2:0", "2:-9999999999999999999999:0"]
    )
    @pytest.mark.parametrize("path", LISTS)
    async def test_a_cursor_whose_numbers_overflow_is_an_invalid_cursor_on_every_list(
        self, client: Client, path: str, cursor: str
    ) -> None:
        await create_release(client, "1.0")
        resp = await client.get(path, params={"cursor": cursor}, headers=bearer())
        # "1e308" has no "." so Sentry reads it as an int, which fails; the others overflow.
        await assert_api_error(resp, 400, {"detail": sentry.INVALID_CURSOR})

    async def test_a_bundles_file_list_reads_overflowing_cursors_as_invalid(self, client: Client) -> None:
        bundle = make_bundle({"~/a.js": b"a"}, release="1.0", debug_id="b0b0b0b0-0000-4000-8000-000000000009")
        result = await upload_bundle(client, bundle, version="1.0")
        assert result["state"] == "ok", result
        path = f"{PROJECT_URL}/artifact-bundles/b0b0b0b0-0000-4000-8000-000000000009/files/"
        resp = await client.get(path, params={"cursor": "1.0e308:5:0"}, headers=bearer())
        await assert_api_error(resp, 400, {"detail": sentry.INVALID_CURSOR})

    @pytest.mark.parametrize("scope", [ORG_URL, PROJECT_URL])
    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    async def test_a_file_id_no_database_key_can_hold_is_404(self, client: Client, scope: str, method: str) -> None:
        await create_release(client, "1.0")
        resp = await client.request(
            method, f"{scope}/releases/1.0/files/99999999999999999999999/", json={"name": "x"}, headers=bearer()
        )
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})

    @pytest.mark.parametrize(
        "target", ["release_file/99999999999999999999999", "artifact_bundle/²", "release_file/\u0661"]
    )
    async def test_an_artifact_lookup_download_id_that_names_no_row_is_an_empty_404(
        self, client: Client, target: str
    ) -> None:
        await create_release(client, "1.0")
        resp = await client.get(f"{PROJECT_URL}/artifact-lookup/", params={"download": target}, headers=bearer())
        assert (resp.status, await resp.read()) == (404, b"")


class TestSearchTerms:
    @pytest.mark.parametrize("query", ["00\x00", "\x00", "abc\x00def", 'a"b\x00'])
    async def test_a_query_term_holding_nul_is_searched_not_a_500(self, client: Client, query: str) -> None:
        await create_release(client, "1.0")
        assert (await upload(client, b"x", name="~/abc\x00def.js")).status == 201
        resp = await client.get(f"{PROJECT_URL}/releases/1.0/files/", params={"query": query}, headers=bearer())
        assert resp.status == 200, await resp.text()
        names = [f["name"] for f in await resp.json()]
        assert names == (["~/abc\x00def.js"] if query in ("\x00", "abc\x00def") else [])


class TestDeployFields:
    @pytest.mark.parametrize(
        "url", ["not a url", "ftp:/x", "http://", "http://nodot", "javascript:alert(1)", "http://a b.com"]
    )
    async def test_a_deploy_url_that_is_not_a_url_is_drfs_400(self, client: Client, url: str) -> None:
        await create_release(client, "1.0")
        resp = await client.post(
            f"{ORG_URL}/releases/1.0/deploys/", json={"environment": "p", "url": url}, headers=bearer()
        )
        await assert_api_error(resp, 400, {"url": [sentry.INVALID_URL]})

    @pytest.mark.parametrize(
        "url", ["https://ci.example.com/job/1?x=y#z", "http://localhost:8080/", "http://127.0.0.1/", "http://[::1]:9/"]
    )
    async def test_a_deploy_url_django_accepts_is_kept(self, client: Client, url: str) -> None:
        await create_release(client, "1.0")
        resp = await client.post(
            f"{ORG_URL}/releases/1.0/deploys/", json={"environment": "p", "url": url}, headers=bearer()
        )
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["url"] == url

    async def test_a_deploy_name_is_at_most_64_characters(self, client: Client) -> None:
        await create_release(client, "1.0")
        url = f"{ORG_URL}/releases/1.0/deploys/"
        resp = await client.post(url, json={"environment": "p", "name": "n" * 65}, headers=bearer())
        await assert_api_error(resp, 400, {"name": ["Ensure this field has no more than 64 characters."]})
        resp = await client.post(url, json={"environment": "p", "name": "n" * 64}, headers=bearer())
        assert resp.status == 201


class TestOrganizationReleaseProjectFilter:
    async def test_project_ids_filter_the_organization_release_list(self, client: Client) -> None:
        web = (await create_release(client, "1.0", projects=["web"]))["projects"][0]["id"]
        api = (await create_release(client, "2.0", projects=["api"]))["projects"][0]["id"]
        await create_release(client, "3.0", projects=["web", "api"])

        async def versions(*ids: int) -> list[str]:
            resp = await client.get(f"{ORG_URL}/releases/", params=[("project", str(i)) for i in ids], headers=bearer())
            assert resp.status == 200, await resp.text()
            return [r["version"] for r in await resp.json()]

        assert await versions(web) == ["3.0", "1.0"]
        assert await versions(api) == ["3.0", "2.0"]
        assert await versions(web, api) == ["3.0", "2.0", "1.0"]
        assert await versions(-1) == await versions() == ["3.0", "2.0", "1.0"]

    @pytest.mark.parametrize(("value", "status"), [("web", 400), ("99999999999999999999999", 403), ("424242", 403)])
    async def test_a_project_filter_sentry_refuses_is_its_error(self, client: Client, value: str, status: int) -> None:
        await create_release(client, "1.0")
        resp = await client.get(f"{ORG_URL}/releases/", params={"project": value}, headers=bearer())
        body = {
            "detail": sentry.INVALID_PROJECT_PARAMETER
            if status == 400
            else "You do not have permission to perform this action."
        }
        await assert_api_error(resp, status, body)


class TestAutoCreateNeedsACreatingRequest:
    """Organizations and projects appear on first use only by a request that creates and succeeds."""

    @pytest.mark.parametrize(
        "path",
        [
            "/api/0/organizations/typo/",
            "/api/0/organizations/typo/releases/",
            "/api/0/projects/typo/web/releases/",
            "/api/0/projects/acme/typo/releases/",
            "/api/0/organizations/typo/releases/1.0/files/",
            "/api/0/projects/acme/typo/files/artifact-bundles/",
            "/api/0/projects/acme/typo/artifact-lookup/",
        ],
    )
    async def test_a_get_on_an_unknown_organization_or_project_is_404_and_creates_nothing(
        self, client: Client, path: str
    ) -> None:
        await create_release(client, "1.0")
        resp = await client.get(path, headers=bearer())
        await assert_api_error(resp, 404, {"detail": "The requested resource does not exist"})
        # Still unknown: the organization list of the token shows nothing new either.
        resp = await client.get("/api/0/organizations/typo/", headers=bearer())
        assert resp.status == 404
        resp = await client.get("/api/0/projects/acme/typo/releases/", headers=bearer())
        assert resp.status == 404

    async def test_a_failed_upload_or_release_create_creates_nothing(self, client: Client) -> None:
        assert (await upload(client, b"x", org="typo", project="web")).status == 404
        resp = await client.post("/api/0/organizations/typo/releases/", json={"projects": ["web"]}, headers=bearer())
        assert resp.status == 400
        resp = await client.post(
            "/api/0/organizations/typo/releases/", json={"version": "1", "projects": ["Not A Slug"]}, headers=bearer()
        )
        await assert_api_error(resp, 400, {"projects": ["Invalid project ids or slugs"]})
        resp = await client.post("/api/0/projects/typo/web/releases/", json={"version": ""}, headers=bearer())
        assert resp.status == 400
        bad_chunk = chunk_form([b"chunk"], names=["0" * 40])
        resp = await client.post("/api/0/organizations/typo/chunk-upload/", data=bad_chunk, headers=bearer())
        assert resp.status == 400
        assemble = {"checksum": "a" * 40, "chunks": [], "projects": ["Not A Slug"]}
        resp = await client.post("/api/0/organizations/typo/artifactbundle/assemble/", json=assemble, headers=bearer())
        await assert_api_error(resp, 400, {"error": "One or more projects are invalid"})
        assert (await client.get("/api/0/organizations/typo/", headers=bearer())).status == 404

    async def test_chunk_upload_options_answer_for_an_organization_the_upload_will_create(self, client: Client) -> None:
        resp = await client.get("/api/0/organizations/fresh/chunk-upload/", headers=bearer())
        assert resp.status == 200
        assert (await resp.json())["url"].endswith("/api/0/organizations/fresh/chunk-upload/")
        assert (await client.get("/api/0/organizations/fresh/", headers=bearer())).status == 404
        bundle = make_bundle({"~/a.js": b"a"}, org="fresh", release="1.0")
        assert (await upload_bundle(client, bundle, org="fresh", version="1.0"))["state"] == "ok"
        assert (await client.get("/api/0/organizations/fresh/", headers=bearer())).status == 200

    async def test_creating_requests_create_the_organization_and_project(self, client: Client) -> None:
        resp = await client.post("/api/0/projects/new-org/new-proj/releases/", json={"version": "1"}, headers=bearer())
        assert resp.status == 201, await resp.text()
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["new-proj"]
        resp = await client.get("/api/0/organizations/new-org/", headers=bearer())
        assert [p["slug"] for p in (await resp.json())["projects"]] == ["new-proj"]


class TestDeleteAllDeletesWhatTheReleaseLists:
    async def test_delete_all_removes_files_and_the_bundles_the_release_lists(
        self, client: Client, config: Any
    ) -> None:
        await create_release(client, "1.0")
        assert (await upload(client, b"classic")).status == 201
        tied = make_bundle({"~/a.js": b"bundled", "~/a.js.map": b"{}"}, release="1.0")
        # Small chunks, so the bundle's zip is a blob of its own, not also a chunk (chunks stay).
        assert (await upload_bundle(client, tied, version="1.0", chunk_size=64))["state"] == "ok"
        other = make_bundle({"~/b.js": b"other"}, release="2.0", debug_id="b0b0b0b0-0000-4000-8000-000000000002")
        assert (await upload_bundle(client, other, version="2.0"))["state"] == "ok"
        listed = await (await client.get(f"{PROJECT_URL}/releases/1.0/files/", headers=bearer())).json()
        assert sorted(f["name"] for f in listed) == ["~/a.js", "~/a.js.map", "~/app.js"]

        resp = await client.delete(f"{PROJECT_URL}/files/source-maps/", params={"name": "1.0"}, headers=bearer())
        assert resp.status == 204
        assert await (await client.get(f"{PROJECT_URL}/releases/1.0/files/", headers=bearer())).json() == []
        bundles = await (await client.get(f"{PROJECT_URL}/files/artifact-bundles/", headers=bearer())).json()
        assert [b["associations"] for b in bundles] == [[{"release": "2.0", "dist": None}]]
        # The bytes only the deleted files held are gone; the other release's are not.
        on_disk = set(stored_sha1s(config))
        assert not {sha1(b"classic"), sha1(tied)} & on_disk
        assert sha1(other) in on_disk


class TestDisconnects:
    """A real process: aiohttp's test server cancels handlers on disconnect, production does not."""

    def test_a_client_that_hangs_up_mid_body_is_one_line_not_a_500(self, tmp_path: Path) -> None:
        paths = [
            ("POST", "/api/0/organizations/acme/releases/", "application/json"),
            ("POST", "/api/0/organizations/acme/releases/", "application/x-www-form-urlencoded"),
            ("PUT", "/api/0/projects/acme/web/releases/1.0/", "application/json"),
            ("POST", "/api/0/organizations/acme/artifactbundle/assemble/", "application/json"),
            ("POST", "/api/0/projects/acme/web/releases/1.0/files/", "multipart/form-data; boundary=b"),
            ("POST", "/api/0/organizations/acme/chunk-upload/", "multipart/form-data; boundary=b"),
        ]
        data_dir = tmp_path / "data"
        with running_server(data_dir, token="t", extra_args=["--no-fsync"]) as server:
            host, port = server.url.removeprefix("http://").rsplit(":", 1)
            release = urllib.request.Request(
                f"{server.url}/api/0/organizations/acme/releases/",
                data=b'{"version": "1.0", "projects": ["web"]}',
                headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
            )
            urllib.request.urlopen(release, timeout=10).close()
            for method, path, content_type in paths:
                with socket.create_connection((host, int(port))) as sock:
                    head = (
                        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer t\r\n"
                        f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
                    )
                    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n{"ve'
                    sock.sendall(head.encode() + part)
                server.wait_for_log(f"client closed the connection during {method} {path}")
            log = server.log()
        assert "internal error" not in log and "Traceback" not in log, log
        assert not [p for p in (data_dir / "tmp").iterdir()]
