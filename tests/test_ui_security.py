"""The web UI's security rules (DESIGN D11) over the real app: cookie flags, the origin check,
response headers, session expiry and revocation, scopes, escaping, downloads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import pytest

from relserver import auth
from relserver.config import Config
from relserver.keys import catalog_key

from .conftest import ADMIN_TOKEN, Client, ClientFactory, bearer, create_release, mint_token, upload

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


async def sign_in(client: Client, token: str = ADMIN_TOKEN, *, headers: dict[str, str] | None = None) -> str:
    """Sign in through the form; returns the session cookie's value."""
    resp = await client.post(
        "/ui/login/", data={"token": token, "next": "/ui/"}, headers=headers or SAME_ORIGIN, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()
    cookie = resp.cookies["relserver_session"]
    return cookie.value


async def fresh_client(client: Client, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """A second browser on the same server (its own cookie jar)."""
    return await aiohttp_client(client.server)


async def page(client: Client, path: str) -> tuple[int, str]:
    resp = await client.get(path, allow_redirects=False)
    return resp.status, await resp.text()


class TestSessionCookie:
    async def test_the_session_cookie_is_httponly_strict_and_limited_to_ui(self, client: Client) -> None:
        resp = await client.post("/ui/login/", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 303
        (header,) = resp.headers.getall("Set-Cookie")
        parts = {p.strip().split("=")[0].lower(): p.strip() for p in header.split(";")}
        assert "httponly" in parts
        assert parts["samesite"].lower() == "samesite=strict"
        assert parts["path"] == "Path=/ui/"
        assert "secure" not in parts  # plain http
        assert resp.headers["Location"] == "/ui/"

    async def test_the_cookie_is_secure_when_the_server_is_reached_over_https(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(public_url="https://releases.example.com"))
        resp = await client.post("/ui/login/", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN, allow_redirects=False)
        assert "Secure" in resp.headers["Set-Cookie"]

    async def test_the_session_secret_is_stored_only_as_its_hash(self, client: Client) -> None:
        secret = await sign_in(client)
        async with client.app[catalog_key].read() as tx:
            assert await tx.sessions.get(secret) is None
            assert await tx.sessions.get(auth.hash_token(secret)) is not None

    async def test_the_api_stays_bearer_only_a_session_cookie_is_not_credentials(self, client: Client) -> None:
        secret = await sign_in(client)
        resp = await client.get("/api/0/", headers={"Cookie": f"relserver_session={secret}"})
        body = await resp.json()
        assert body["auth"] is None
        resp = await client.get(
            "/api/0/organizations/acme/releases/", headers={"Cookie": f"relserver_session={secret}"}
        )
        assert resp.status == 401

    async def test_a_wrong_token_makes_no_session(self, client: Client) -> None:
        resp = await client.post("/ui/login/", data={"token": "nope"}, headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 401
        assert "Set-Cookie" not in resp.headers
        assert "not valid" in await resp.text()

    async def test_a_token_that_may_not_read_releases_cannot_sign_in(self, client: Client) -> None:
        raw = await mint_token(client, scopes=["org:read"])
        resp = await client.post("/ui/login/", data={"token": raw}, headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 401
        assert "Set-Cookie" not in resp.headers

    @pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/", "/api/0/", "/ui\\..\\x"])
    async def test_after_sign_in_the_browser_goes_only_to_a_ui_page(self, client: Client, target: str) -> None:
        resp = await client.post(
            "/ui/login/", data={"token": ADMIN_TOKEN, "next": target}, headers=SAME_ORIGIN, allow_redirects=False
        )
        assert resp.headers["Location"] == "/ui/"

    async def test_signing_out_ends_the_session_on_the_server(self, client: Client) -> None:
        secret = await sign_in(client)
        resp = await client.post("/ui/logout/", headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 303
        async with client.app[catalog_key].read() as tx:
            assert await tx.sessions.get(auth.hash_token(secret)) is None


class TestOriginCheck:
    @pytest.mark.parametrize(
        ("headers", "seen"),
        [
            ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, "Sec-Fetch-Site: cross-site"),
            # Another port of the same host is the same *site*: the Strict cookie goes along.
            ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, "Sec-Fetch-Site: same-site"),
            ({"Origin": "https://evil.example"}, "Origin: https://evil.example"),
            ({"Origin": "null"}, "Origin: null"),
            ({}, "Origin: none"),
        ],
    )
    async def test_a_non_get_from_elsewhere_is_refused_naming_what_was_seen_and_expected(
        self, client: Client, headers: dict[str, str], seen: str
    ) -> None:
        await sign_in(client)
        resp = await client.post("/ui/activity/clear/", headers=headers, allow_redirects=False)
        text = await resp.text()
        assert resp.status == 403, text
        assert seen in text
        expected = f"http://{client.host}:{client.port}"
        assert expected in text
        assert "--public-url" in text

    async def test_the_sign_in_form_itself_is_origin_checked(self, client: Client) -> None:
        resp = await client.post(
            "/ui/login/",
            data={"token": ADMIN_TOKEN},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        )
        assert resp.status == 403
        assert "Set-Cookie" not in resp.headers

    async def test_without_fetch_metadata_the_servers_own_origin_passes(self, client: Client) -> None:
        origin = f"http://{client.host}:{client.port}"
        await sign_in(client, headers={"Origin": origin})

    async def test_behind_a_proxy_the_public_url_is_the_expected_origin(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(public_url="https://releases.example.com/"))
        await sign_in(client, headers={"Origin": "https://releases.example.com"})
        direct = f"http://{client.host}:{client.port}"
        resp = await client.post("/ui/login/", data={"token": ADMIN_TOKEN}, headers={"Origin": direct})
        assert resp.status == 403
        assert "https://releases.example.com" in await resp.text()

    async def test_with_trust_proxy_the_forwarded_origin_is_expected(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(trust_proxy=True))
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "rel.example.org"}
        await sign_in(client, headers={**forwarded, "Origin": "https://rel.example.org"})
        resp = await client.post(
            "/ui/login/", data={"token": ADMIN_TOKEN}, headers={"Origin": "https://rel.example.org"}
        )
        assert resp.status == 403  # without the forwarded headers the origin is the direct one

    async def test_gets_need_no_origin(self, client: Client) -> None:
        await sign_in(client)
        status, _ = await page(client, "/ui/")
        assert status == 200


class TestHeaders:
    @pytest.mark.parametrize("path", ["/ui/login/", "/ui/", "/ui/nope/web/releases/", "/ui/no/such/page/"])
    async def test_every_ui_answer_has_a_strict_csp_no_framing_and_nosniff(self, client: Client, path: str) -> None:
        await sign_in(client)
        resp = await client.get(path, allow_redirects=False)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # no script may run at all
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"

    async def test_pages_are_not_cached_and_assets_are_cached_under_a_hashed_url(self, client: Client) -> None:
        resp = await client.get("/ui/login/")
        assert resp.headers["Cache-Control"] == "no-store"
        (css,) = re.findall(r'href="(/ui/static/ui\.css\?v=[^"]+)"', await resp.text())
        asset = await client.get(css)
        assert asset.status == 200
        assert "immutable" in asset.headers["Cache-Control"]
        assert "max-age=31536000" in asset.headers["Cache-Control"]
        assert asset.headers["Content-Type"].startswith("text/css")

    async def test_the_api_gets_none_of_the_pages_headers(self, client: Client) -> None:
        resp = await client.get("/api/0/", headers=bearer())
        assert "Content-Security-Policy" not in resp.headers


class TestSessionLife:
    async def test_revoking_the_token_ends_its_session(
        self, client: Client, aiohttp_client: Callable[..., Awaitable[Client]]
    ) -> None:
        raw = await mint_token(client, scopes=["project:releases", "org:read"])
        other = await fresh_client(client, aiohttp_client)
        await sign_in(other, raw)
        assert (await page(other, "/ui/"))[0] == 200
        async with client.app[catalog_key].write() as tx:
            token = await tx.tokens.get(auth.hash_token(raw))
            assert token is not None
            # As `relserver token revoke` does: the token only; its sessions are refused on read.
            await tx.tokens.revoke(token.id)
        status, _ = await page(other, "/ui/")
        assert status == 303

    async def test_a_session_ends_after_its_idle_limit(self, make_client: ClientFactory, config: Config) -> None:
        client = await make_client(config.with_overrides(ui_session_idle_seconds=2))
        await sign_in(client)
        assert (await page(client, "/ui/"))[0] == 200
        await asyncio.sleep(2.2)
        resp = await client.get("/ui/", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/ui/login/?next=/ui/"

    async def test_use_within_the_idle_limit_keeps_a_session_alive(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(ui_session_idle_seconds=3))
        await sign_in(client)
        # Four uses a second apart outlast the 3 s limit only if each renews the session.
        for _ in range(4):
            await asyncio.sleep(1)
            assert (await page(client, "/ui/"))[0] == 200

    async def test_a_session_ends_at_its_absolute_limit_however_busy(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(ui_session_max_age_seconds=2))
        await sign_in(client)
        assert (await page(client, "/ui/"))[0] == 200
        await asyncio.sleep(2.2)
        assert (await page(client, "/ui/"))[0] == 303

    async def test_the_banners_sign_in_link_works_once(self, client: Client) -> None:
        from relserver.keys import signin_codes_key

        code = client.app[signin_codes_key].issue(ADMIN_TOKEN)
        form = await client.get(f"/ui/signin/?code={code}")
        assert 'name="code"' in await form.text()  # a GET only shows the button
        first = await client.post("/ui/signin/", data={"code": code}, headers=SAME_ORIGIN, allow_redirects=False)
        assert first.status == 303
        assert "relserver_session" in first.cookies
        again = await client.post("/ui/signin/", data={"code": code}, headers=SAME_ORIGIN, allow_redirects=False)
        assert again.status == 401


class TestScopes:
    async def test_a_read_only_session_can_look_but_not_delete_download_or_administer(self, client: Client) -> None:
        await create_release(client)
        resp = await upload(client, b"x = 1\n", name="~/app.js")
        file_id = (await resp.json())["id"]
        raw = await mint_token(client, scopes=["project:read"])
        await sign_in(client, raw)
        base = f"/ui/acme/web/releases/1.0/files/{file_id}"
        assert (await page(client, f"{base}/"))[0] == 200
        assert (await page(client, f"{base}/download/"))[0] == 403
        assert (await page(client, f"{base}/delete/"))[0] == 403
        resp = await client.post(f"{base}/delete/", headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 403
        assert (await page(client, "/ui/tokens/"))[0] == 403
        assert (await page(client, "/ui/acme/web/releases/1.0/"))[0] == 200  # the file is still there
        assert "~/app.js" in (await page(client, "/ui/acme/web/releases/1.0/"))[1]

    async def test_a_token_bound_to_one_organization_sees_only_that_one(self, client: Client) -> None:
        await create_release(client, org="acme")
        await create_release(client, org="other")
        raw = await mint_token(client, scopes=["project:releases"], organization="acme")
        await sign_in(client, raw)
        _, overview = await page(client, "/ui/")
        assert "acme" in overview
        assert "other" not in overview
        assert (await page(client, "/ui/other/web/releases/"))[0] == 403

    async def test_a_new_token_never_gets_a_scope_its_creator_lacks(self, client: Client) -> None:
        raw = await mint_token(client, scopes=["org:admin", "project:read"])
        await sign_in(client, raw)
        resp = await client.post("/ui/tokens/", data={"label": "x", "scope": "project:releases"}, headers=SAME_ORIGIN)
        assert resp.status == 400
        # Nothing ticked is the CLI's default (project:releases, org:read), cut to what it has.
        resp = await client.post("/ui/tokens/", data={"label": "y"}, headers=SAME_ORIGIN)
        assert resp.status == 400
        assert "at least one scope" in await resp.text()
        async with client.app[catalog_key].read() as tx:
            assert [t.label for t in await tx.tokens.all()] == ["pinned (--token / RELSERVER_TOKEN)", "test"]

    async def test_a_token_created_on_the_page_is_shown_once_and_works_on_the_api(self, client: Client) -> None:
        await sign_in(client)
        resp = await client.post(
            "/ui/tokens/",
            data={"label": "ci", "scope": ["project:releases", "org:read"]},
            headers=SAME_ORIGIN,
        )
        text = await resp.text()
        (raw,) = re.findall(r'id="new-token">([^<]+)<', text)
        api = await client.get("/api/0/", headers=bearer(raw))
        assert sorted((await api.json())["auth"]["scopes"]) == ["org:read", "project:releases"]
        assert raw not in await (await client.get("/ui/tokens/")).text()


class TestEscaping:
    async def test_every_uploaded_value_is_shown_as_text(self, client: Client) -> None:
        version = "<b onmouseover=x>1"  # a release version cannot hold "/"
        await create_release(client, version)
        evil = "~/<script>alert(1)</script>.js"
        resp = await upload(
            client,
            b"x\n",
            version=version,
            name=evil,
            dist="<i>d</i>",
            headers=["X-Note: <img src=x onerror=alert(2)>"],
        )
        assert resp.status == 201, await resp.text()
        for path in ("/ui/acme/web/releases/", f"/ui/acme/web/releases/{quote(version, safe='')}/"):
            await sign_in(client)
            status, text = await page(client, path)
            assert status == 200
            assert "<script>" not in text
            assert "<img" not in text
            assert "<b " not in text
            assert "&lt;b onmouseover=x&gt;1" in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=alert(2)&gt;" in text


class TestDownloads:
    async def test_a_download_is_an_attachment_of_opaque_type_with_the_exact_bytes(self, client: Client) -> None:
        await create_release(client)
        data = b"<html><script>alert(1)</script></html>"
        resp = await upload(client, data, name="~/page.html", content_type="text/html")
        file_id = (await resp.json())["id"]
        await sign_in(client)
        got = await client.get(f"/ui/acme/web/releases/1.0/files/{file_id}/download/")
        assert got.status == 200
        assert await got.read() == data
        assert got.headers["Content-Disposition"] == 'attachment; filename="page.html"'
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["X-Content-Type-Options"] == "nosniff"


class TestActivityFeed:
    async def test_the_feed_lists_api_calls_newest_first_marks_unimplemented_ones_and_is_bounded(
        self, make_client: ClientFactory, config: Config
    ) -> None:
        client = await make_client(config.with_overrides(ui_activity_limit=3))
        await client.get("/api/0/", headers={**bearer(), "User-Agent": "sentry-cli/2.58.6"})
        await client.get("/api/0/no-such-thing/", headers=bearer())
        await create_release(client)
        await client.get("/api/0/organizations/acme/releases/1.0/", headers=bearer())
        await sign_in(client)
        _, text = await page(client, "/ui/activity/")
        rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", text, re.S)
        assert len(rows) == 3  # the oldest call fell out of the ring
        assert "/releases/1.0/" in rows[0]
        assert "no-such-thing" in rows[2] and "not implemented" in rows[2]
        assert "not implemented" not in rows[0]
        assert "/ui/" not in "".join(rows)  # the pages themselves are not API calls

    async def test_clearing_the_feed_needs_an_unbound_admin(
        self, client: Client, aiohttp_client: Callable[..., Awaitable[Client]]
    ) -> None:
        await client.get("/api/0/", headers=bearer())
        bound = await mint_token(client, scopes=["project:admin", "org:admin"], organization="acme")
        other = await fresh_client(client, aiohttp_client)
        await sign_in(other, bound)
        resp = await other.post("/ui/activity/clear/", headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 403
        await sign_in(client)
        resp = await client.post("/ui/activity/clear/", headers=SAME_ORIGIN, allow_redirects=False)
        assert resp.status == 303
        assert "No API calls yet" in (await page(client, "/ui/activity/"))[1]
