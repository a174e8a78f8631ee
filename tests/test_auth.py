"""Bearer tokens, Sentry's 401/403 bodies, scopes per method, and organization binding."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3

import pytest

from relserver import auth
from relserver.config import Config
from relserver.keys import catalog_key

from .conftest import (
    ADMIN_TOKEN,
    ORG,
    Client,
    ClientFactory,
    assert_api_error,
    create_release,
    files_url,
    mint_token,
    upload,
)

ORG_RELEASES = f"/api/0/organizations/{ORG}/releases/"
DENIED = {"detail": "You do not have permission to perform this action."}


async def assert_401(client: Client, headers: dict[str, str], detail: str) -> None:
    resp = await client.post(ORG_RELEASES, json={"version": "1.0", "projects": []}, headers=headers)
    await assert_api_error(resp, 401, {"detail": detail})
    assert resp.headers["WWW-Authenticate"] == 'xBasic realm="api"'


class TestAuthentication:
    @pytest.mark.parametrize(
        ("authorization", "detail"),
        [
            (None, "Authentication credentials were not provided."),
            ("Token abc", "Authentication credentials were not provided."),
            ("Basic dXNlcjpwYXNz", "Authentication credentials were not provided."),
            ("Bearer", "Invalid token header. No credentials provided."),
            ("Bearer a b", "Invalid token header. Token string should not contain spaces."),
            ("Bearer nope", "Invalid token"),
            ("Bearer sntryu_" + "0" * 64, "Invalid token"),
            ("Bearer sntrys_eyJvcmciOiJhY21lIn0=_secret", "Invalid org token"),
        ],
    )
    async def test_bad_credentials_get_sentrys_401(
        self, client: Client, authorization: str | None, detail: str
    ) -> None:
        await assert_401(client, {"Authorization": authorization} if authorization else {}, detail)

    async def test_revoked_token_is_invalid(self, client: Client) -> None:
        token = await mint_token(client, scopes=["project:releases"])
        async with client.app[catalog_key].write() as tx:
            (record,) = [t for t in await tx.tokens.all() if t.last_characters == token[-4:]]
            assert await tx.tokens.revoke(record.id)
        await assert_401(client, {"Authorization": f"Bearer {token}"}, "Invalid token")

    async def test_authentication_comes_before_the_lookup_of_path_objects(self, client: Client) -> None:
        resp = await client.post(files_url("1.0", org="does-not-exist"), data=b"")
        await assert_api_error(resp, 401, {"detail": "Authentication credentials were not provided."})

    @pytest.mark.sqlite_only
    async def test_tokens_are_stored_only_as_hashes(self, client: Client, config: Config) -> None:
        """Neither a minted token nor the pinned one is anywhere at rest: not in any file of the
        data dir (a fresh row sits in the WAL until a checkpoint, so the main file alone proves
        nothing), and not in any column of any row, read back through SQL."""
        minted = await mint_token(client, scopes=["project:releases"])
        secrets = [minted, ADMIN_TOKEN]
        files = [p for p in config.data_dir.rglob("*") if p.is_file()]
        assert {p.name for p in files} >= {config.db_path.name, f"{config.db_path.name}-wal"}
        for path in files:
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, path.name
        with contextlib.closing(sqlite3.connect(f"{config.db_path.as_uri()}?mode=ro", uri=True)) as conn:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert "tokens" in tables
            hashes = {row[0] for row in conn.execute("SELECT token_hash FROM tokens")}
            assert hashes >= {auth.hash_token(secret) for secret in secrets}
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 -- names from sqlite_master
                    for value in row:
                        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                        for secret in secrets:
                            assert secret not in text, table


class TestScopes:
    @pytest.mark.parametrize("scope", ["project:releases", "project:write", "project:admin", "org:ci"])
    async def test_write_scopes_may_upload(self, client: Client, scope: str) -> None:
        await create_release(client)
        token = await mint_token(client, scopes=[scope])
        assert (await upload(client, token=token)).status == 201

    @pytest.mark.parametrize("scope", ["project:read", "org:read", "org:write", "event:admin"])
    async def test_other_scopes_are_403_before_the_path_is_resolved(self, client: Client, scope: str) -> None:
        token = await mint_token(client, scopes=[scope])
        # The release does not exist: a 404 would leak that; the scope check answers first.
        await assert_api_error(await upload(client, token=token, version="missing"), 403, DENIED)
        resp = await client.post(
            ORG_RELEASES, json={"version": "1.0", "projects": []}, headers={"Authorization": f"Bearer {token}"}
        )
        await assert_api_error(resp, 403, DENIED)

    @pytest.mark.parametrize("scope", ["project:admin", "project:releases"])
    async def test_admin_or_releases_scope_alone_may_delete_a_file(self, client: Client, scope: str) -> None:
        # Sentry's scope map: DELETE takes only these two; test_files_api has the 403 for the rest.
        await create_release(client)
        uploaded = await (await upload(client)).json()
        token = await mint_token(client, scopes=[scope])
        resp = await client.delete(f"{files_url('1.0')}{uploaded['id']}/", headers={"Authorization": f"Bearer {token}"})
        assert (resp.status, await resp.read()) == (204, b"")


class TestOrganizationBinding:
    async def test_token_bound_to_another_org_gets_403_and_creates_nothing(self, client: Client) -> None:
        token = await mint_token(client, scopes=["project:releases"], organization="other")
        await assert_api_error(await upload(client, token=token), 403, DENIED)
        resp = await client.post(
            ORG_RELEASES, json={"version": "1.0", "projects": ["web"]}, headers={"Authorization": f"Bearer {token}"}
        )
        await assert_api_error(resp, 403, DENIED)
        async with client.app[catalog_key].read() as tx:
            assert await tx.organizations.get(ORG) is None

    async def test_token_bound_to_another_org_gets_403_on_an_existing_org(self, client: Client) -> None:
        await create_release(client)
        async with client.app[catalog_key].read() as tx:
            org = await tx.organizations.get(ORG)
        assert org is not None
        token = await mint_token(client, scopes=["project:releases"], organization="other")
        await assert_api_error(await upload(client, token=token), 403, DENIED)
        # Naming the org by its numeric id does not get around the binding.
        await assert_api_error(await upload(client, token=token, org=str(org.id)), 403, DENIED)

    async def test_bound_token_works_in_its_own_org(self, client: Client) -> None:
        token = await mint_token(client, scopes=["project:releases"], organization=ORG)
        resp = await client.post(
            ORG_RELEASES, json={"version": "1.0", "projects": ["web"]}, headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 201
        assert (await upload(client, token=token)).status == 201

    async def test_org_token_payload_carries_url_and_org_for_sentry_cli(self, client: Client) -> None:
        raw = auth.new_org_token(url="http://127.0.0.1:9000", org=ORG)
        prefix, payload, secret = raw.split("_")
        assert prefix == "sntrys"
        assert json.loads(base64.b64decode(payload)) | {"iat": 0} == {
            "iat": 0,
            "url": "http://127.0.0.1:9000",
            "region_url": "http://127.0.0.1:9000",
            "org": ORG,
        }
        # sentry-cli insists on exactly 32 bytes of unpadded base64 for the secret.
        assert len(base64.b64decode(secret + "=" * (-len(secret) % 4))) == 32
        await mint_token(client, scopes=auth.ORG_TOKEN_SCOPES, organization=ORG, token=raw)
        await create_release(client)
        assert (await upload(client, token=raw)).status == 201


class TestProvisioning:
    async def test_unknown_org_and_project_are_404_without_auto_create(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(auto_create=False))
        not_found = {"detail": "The requested resource does not exist"}
        await assert_api_error(await upload(client), 404, not_found)
        async with client.app[catalog_key].write() as tx:
            org = await tx.organizations.ensure(ORG)
        await assert_api_error(await upload(client), 404, not_found)
        async with client.app[catalog_key].read() as tx:
            assert await tx.projects.get(org.id, "web") is None
