"""Chunk upload: the options GET and the chunk POST (Sentry's api/endpoints/chunk.py)."""

from __future__ import annotations

import gzip
import logging
import zlib

import aiohttp
import pytest

from relserver.api.chunks import LEGACY_MODE_VS_CLI_3
from relserver.config import Config, KiB, MiB
from relserver.keys import catalog_key
from relserver.storage.blobs.disk import TempBlob

from .bundle_helpers import ORG_URL, chunk_form
from .conftest import Client, ClientFactory, assert_api_error, bearer, mint_token, sha1, stored_sha1s, temp_files

CHUNK_URL = f"{ORG_URL}/chunk-upload/"


async def post_chunks(
    client: Client, form: aiohttp.FormData, headers: dict[str, str] | None = None
) -> aiohttp.ClientResponse:
    return await client.post(CHUNK_URL, data=form, headers={**bearer(), **(headers or {})})


async def owned(client: Client, sha1s: list[str]) -> set[str]:
    async with client.app[catalog_key].write() as tx:
        org = await tx.organizations.ensure("acme")
        return await tx.chunks.owned(org.id, sha1s)


class TestOptions:
    async def test_options_are_sentrys_with_an_absolute_url_on_the_requests_origin(self, client: Client) -> None:
        resp = await client.get(CHUNK_URL, headers={**bearer(), "Host": "uploads.example.test:8443"})
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {
            "url": "http://uploads.example.test:8443/api/0/organizations/acme/chunk-upload/",
            "chunkSize": 8 * MiB,
            "chunksPerRequest": 64,
            "maxFileSize": 64 * KiB,
            "maxRequestSize": 32 * MiB,
            "concurrency": 8,
            "hashAlgorithm": "sha1",
            "compression": ["gzip"],
            "accept": ["release_files", "artifact_bundles", "artifact_bundles_v2"],
        }

    async def test_forwarded_headers_count_only_behind_a_trusted_proxy(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        forwarded = {**bearer(), "X-Forwarded-Proto": "https", "X-Forwarded-Host": "sentry.example.test"}
        plain = await make_client(config)
        url = (await (await plain.get(CHUNK_URL, headers=forwarded)).json())["url"]
        assert url.startswith(f"http://{plain.server.host}:{plain.server.port}/")
        trusting = await make_client(config.with_overrides(trust_proxy=True, data_dir=config.data_dir.with_name("own")))
        url = (await (await trusting.get(CHUNK_URL, headers=forwarded)).json())["url"]
        assert url == "https://sentry.example.test/api/0/organizations/acme/chunk-upload/"

    async def test_the_public_url_overrides_the_requests_origin(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(public_url="https://rel.example.test/", trust_proxy=True))
        headers = {**bearer(), "Host": "uploads.example.test:8443", "X-Forwarded-Host": "proxy.example.test"}
        url = (await (await client.get(CHUNK_URL, headers=headers)).json())["url"]
        assert url == "https://rel.example.test/api/0/organizations/acme/chunk-upload/"

    async def test_release_bundle_mode_advertises_release_files_only(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(upload_mode="release-bundles"))
        assert (await (await client.get(CHUNK_URL, headers=bearer())).json())["accept"] == ["release_files"]

    async def test_legacy_mode_has_no_chunk_upload(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config.with_overrides(upload_mode="legacy"))
        for method in ("GET", "POST"):
            resp = await client.request(method, CHUNK_URL, headers=bearer())
            assert (resp.status, await resp.read()) == (404, b"")
        resp = await client.post(f"{ORG_URL}/artifactbundle/assemble/", json={}, headers=bearer())
        assert resp.status == 404

    @pytest.mark.parametrize(
        ("user_agent", "warned"), [("sentry-cli/3.8.2", True), ("sentry-cli/2.58.6", False), ("curl/8.5", False)]
    )
    async def test_legacy_mode_warns_only_a_3x_client_that_it_has_nothing_to_upload(
        self,
        make_client: ClientFactory,
        config: Config,
        caplog: pytest.LogCaptureFixture,
        user_agent: str,
        warned: bool,
    ) -> None:
        client = await make_client(config.with_overrides(upload_mode="legacy"))
        with caplog.at_level(logging.WARNING, logger="relserver.api.chunks"):
            resp = await client.get(CHUNK_URL, headers={**bearer(), "User-Agent": user_agent})
        assert resp.status == 404
        expected = [f"{LEGACY_MODE_VS_CLI_3} (GET {CHUNK_URL})"] if warned else []
        assert [r.getMessage() for r in caplog.records if r.name == "relserver.api.chunks"] == expected

    async def test_no_warning_where_chunk_upload_exists(self, client: Client, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="relserver.api.chunks"):
            resp = await client.get(CHUNK_URL, headers={**bearer(), "User-Agent": "sentry-cli/3.8.2"})
        assert resp.status == 200
        assert [r for r in caplog.records if r.name == "relserver.api.chunks"] == []

    async def test_chunk_options_without_a_token_are_401(self, client: Client) -> None:
        resp = await client.get(CHUNK_URL)
        await assert_api_error(resp, 401, {"detail": "Authentication credentials were not provided."})


class TestUpload:
    async def test_gzip_and_raw_chunks_are_stored_once_and_owned(self, client: Client, config: Config) -> None:
        a, b = b"a" * 3000, b"b" * 10
        form = chunk_form([a])
        form.add_field("file", b, filename=sha1(b))
        form.add_field("file", b, filename=sha1(b))  # the same chunk twice in one request
        resp = await post_chunks(client, form)
        assert (resp.status, await resp.read()) == (200, b"")
        assert "Content-Type" not in resp.headers
        assert await owned(client, [sha1(a), sha1(b)]) == {sha1(a), sha1(b)}
        assert stored_sha1s(config) == sorted([sha1(a), sha1(b)])
        assert temp_files(config) == []

    async def test_content_encoding_gzip_applies_to_file_parts(self, client: Client) -> None:
        data = b"x" * 500
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("file", gzip.compress(data), filename=sha1(data))
        resp = await post_chunks(client, form, {"Content-Encoding": "gzip"})
        assert resp.status == 200
        assert await owned(client, [sha1(data)]) == {sha1(data)}

    async def test_empty_request_is_200(self, client: Client) -> None:
        resp = await client.post(CHUNK_URL, headers=bearer())
        assert (resp.status, await resp.read()) == (200, b"")
        resp = await post_chunks(client, aiohttp.FormData({"other": "field"}))
        assert resp.status == 200

    @pytest.mark.parametrize(
        ("name", "data"),
        [
            pytest.param(sha1(b"other"), b"data", id="wrong-sha1"),
            pytest.param(sha1(b"data").upper(), b"data", id="uppercase-hex"),
        ],
    )
    async def test_a_chunk_whose_name_is_not_its_sha1_is_refused_and_stores_nothing(
        self, client: Client, config: Config, name: str, data: bytes
    ) -> None:
        resp = await post_chunks(client, chunk_form([data], names=[name]))
        await assert_api_error(resp, 400, {"error": "Checksum mismatch"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    async def test_an_unsupported_content_encoding_is_400_and_stores_nothing(
        self, client: Client, config: Config
    ) -> None:
        resp = await post_chunks(client, chunk_form([b"x"], gzipped=False), {"Content-Encoding": "br"})
        await assert_api_error(resp, 400, {"error": "Unsupported Content-Encoding"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    async def test_content_encoding_with_a_file_gzip_part_is_400_and_stores_nothing(
        self, client: Client, config: Config
    ) -> None:
        resp = await post_chunks(client, chunk_form([b"x"]), {"Content-Encoding": "gzip"})
        await assert_api_error(resp, 400, {"error": "Cannot combine Content-Encoding with file_gzip field"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    async def test_more_chunks_than_advertised_is_400_and_stores_nothing(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(chunks_per_request=4))
        resp = await post_chunks(client, chunk_form([bytes([i]) for i in range(5)]))
        await assert_api_error(resp, 400, {"error": "Too many chunks"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    @pytest.mark.parametrize("gzipped", [True, False])
    async def test_one_chunk_over_the_size(self, make_client: ClientFactory, config: Config, gzipped: bool) -> None:
        client = await make_client(config.with_overrides(chunk_size=1024))
        resp = await post_chunks(client, chunk_form([b"z" * 1025], gzipped=gzipped))
        await assert_api_error(resp, 400, {"error": "Chunk size too large"})
        assert temp_files(config) == []

    async def test_request_over_the_size(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config.with_overrides(chunk_size=1024, max_request_size=2048))
        resp = await post_chunks(client, chunk_form([b"1" * 1000, b"2" * 1000, b"3" * 1000]))
        await assert_api_error(resp, 400, {"error": "Request too large"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    async def test_gzip_bomb_stops_after_one_chunks_worth(
        self, make_client: ClientFactory, config: Config, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Inflating stops one byte past the chunk size: the work is bounded, not only the answer."""
        chunk_size = 64 * KiB
        client = await make_client(config.with_overrides(chunk_size=chunk_size))
        inflated: list[int] = []
        real_write = TempBlob.write

        def counting_write(self: TempBlob, data: bytes) -> None:
            inflated.append(len(data))
            real_write(self, data)

        monkeypatch.setattr(TempBlob, "write", counting_write)
        compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(MiB)
        bomb = b"".join(compressor.compress(block) for _ in range(256)) + compressor.flush()  # 256 MiB of zeros
        assert len(bomb) < MiB
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("file_gzip", bomb, filename=sha1(b""))
        resp = await post_chunks(client, form)
        await assert_api_error(resp, 400, {"error": "Chunk size too large"})
        assert sum(inflated) <= chunk_size + 1, f"{sum(inflated)} bytes inflated in {len(inflated)} writes"
        assert temp_files(config) == []

    async def test_a_corrupt_or_truncated_gzip_chunk_is_400_and_stores_nothing(
        self, client: Client, config: Config
    ) -> None:
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("file_gzip", b"definitely not gzip", filename=sha1(b"x"))
        await assert_api_error(await post_chunks(client, form), 400, {"error": "Invalid gzip payload"})
        truncated = gzip.compress(b"y" * 1000)[:20]
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("file_gzip", truncated, filename=sha1(b"y" * 1000))
        await assert_api_error(await post_chunks(client, form), 400, {"error": "Invalid gzip payload"})
        assert stored_sha1s(config) == [] and temp_files(config) == []

    async def test_one_org_cannot_use_another_orgs_chunks(self, client: Client) -> None:
        data = b"secret chunk"
        await post_chunks(client, chunk_form([data]))
        other = await client.post(
            "/api/0/organizations/other/artifactbundle/assemble/",
            json={"checksum": sha1(data), "chunks": [sha1(data)], "projects": ["web"]},
            headers=bearer(),
        )
        assert await other.json() == {"state": "not_found", "missingChunks": [sha1(data)]}

    async def test_upload_needs_a_write_scope(self, client: Client) -> None:
        token = await mint_token(client, scopes=["project:read"])
        resp = await client.post(CHUNK_URL, data=chunk_form([b"x"]), headers=bearer(token))
        await assert_api_error(resp, 403, {"detail": "You do not have permission to perform this action."})
