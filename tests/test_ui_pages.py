"""The web UI's pages over the real app: what they show for real uploads (the browser tests
drive the same pages in Chromium; these check the content quickly)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from .bundle_helpers import make_bundle, upload_bundle
from .conftest import ADMIN_TOKEN, Client, bearer, create_release, upload
from .resolve_helpers import DIST, stack
from .server_process import running_server
from .test_ui_security import SAME_ORIGIN, page, sign_in

RESOLVE = "/ui/acme/web/resolve/"


async def upload_esbuild(client: Client) -> None:
    await create_release(client, "1.0")
    for path in sorted((DIST / "esbuild").glob("app.js*")):
        resp = await upload(client, path.read_bytes(), name=f"~/dist/esbuild/{path.name}")
        assert resp.status == 201, await resp.text()


class TestResolvePage:
    async def test_pasted_json_too_deep_or_with_a_lone_surrogate_is_a_400_saying_so(self, client: Client) -> None:
        await upload_esbuild(client)
        await sign_in(client)
        for pasted, said in (
            ("[" * 100_000, "no frames found"),  # past the recursion limit: read as a stack trace
            ('{"frames": [{"abs_path": "http://x/a\\ud800.js", "lineno": 1}]}', "Surrogate characters are not allowed"),
        ):
            resp = await client.post(RESOLVE, data={"input": pasted, "release": "1.0"}, headers=SAME_ORIGIN)
            text = await resp.text()
            # The page again with the form, saying what was wrong (a 400, as the API's).
            assert resp.status == 400, (said, text[text.find("<main") :][:600])
            assert 'class="error"' in text and said in text, said

    async def test_a_sign_in_next_page_with_a_line_break_goes_to_the_overview(self, client: Client) -> None:
        resp = await client.post(
            "/ui/login/",
            data={"token": ADMIN_TOKEN, "next": "/ui/x\r\nSet-Cookie: a=b"},
            headers=SAME_ORIGIN,
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/ui/"

    async def test_a_pasted_stack_trace_shows_each_frames_trail_and_original_position(self, client: Client) -> None:
        await upload_esbuild(client)
        await sign_in(client)
        resp = await client.post(RESOLVE, data={"input": stack("esbuild"), "release": "1.0"}, headers=SAME_ORIGIN)
        text = await resp.text()
        assert resp.status == 200, text
        frames = re.findall(r'<article class="frame (ok|bad)">', text)
        assert "ok" in frames and "bad" in frames  # the app's frames resolve, Node's own do not
        assert "formatPrice" in text
        assert "src/price.js" in text
        assert "missing_source" in text

    async def test_an_events_json_brings_its_own_release(self, client: Client) -> None:
        await upload_esbuild(client)
        await sign_in(client)
        line = next(x for x in stack("esbuild").splitlines() if "app:///dist/esbuild/app.js" in x)
        where = re.search(r"(app:///\S+?):(\d+):(\d+)", line)
        assert where is not None
        event = {
            "release": "1.0",
            "exception": {
                "values": [
                    {
                        "stacktrace": {
                            "frames": [
                                {"abs_path": where[1], "lineno": int(where[2]), "colno": int(where[3]), "in_app": True}
                            ]
                        }
                    }
                ]
            },
        }
        resp = await client.post(RESOLVE, data={"input": json.dumps(event)}, headers=SAME_ORIGIN)
        text = await resp.text()
        assert resp.status == 200, text
        assert "1 of 1 frames resolved" in text
        assert "release 1.0" in text

    async def test_input_that_is_no_trace_says_why_and_pasted_html_stays_text(self, client: Client) -> None:
        await create_release(client)
        await sign_in(client)
        resp = await client.post(
            RESOLVE, data={"input": "<script>alert(1)</script>", "release": "1.0"}, headers=SAME_ORIGIN
        )
        text = await resp.text()
        assert resp.status == 400
        assert 'role="alert"' in text
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    async def test_a_trace_in_the_url_resolves_so_the_page_can_be_shared(self, client: Client) -> None:
        await upload_esbuild(client)
        await sign_in(client)
        status, text = await page(client, f"{RESOLVE}?release=1.0&input=" + stack("esbuild").replace("\n", "%0A"))
        assert status == 200
        assert "frames resolved" in text


class TestReleasePages:
    async def test_the_release_page_says_where_each_file_came_from(self, client: Client) -> None:
        await create_release(client)
        await upload(client, b"a\n", name="~/one.js")
        await sign_in(client)
        _, text = await page(client, "/ui/acme/web/releases/1.0/")
        assert "uploaded one by one" in text
        _, listing = await page(client, "/ui/acme/web/releases/")
        assert re.search(r">1\.0</a>", listing)

    async def test_the_file_list_pages_with_the_apis_cursors(self, client: Client) -> None:
        await create_release(client)
        for i in range(3):
            await upload(client, b"x\n", name=f"~/f{i}.js")
        await sign_in(client)
        _, first = await page(client, "/ui/acme/web/releases/1.0/?per_page=2")
        assert "~/f0.js" in first and "~/f2.js" not in first
        (nxt,) = re.findall(r'<a rel="next" href="([^"]+)"', first)
        _, second = await page(client, nxt.replace("&amp;", "&"))
        assert "~/f2.js" in second and "~/f0.js" not in second
        assert 'rel="prev"' in second

    async def test_the_release_list_searches_versions_as_the_project_endpoint_does(self, client: Client) -> None:
        for version in ("1.0", "2.0-beta", "2.1"):
            await create_release(client, version)
        await sign_in(client)
        _, text = await page(client, "/ui/acme/web/releases/?query=2.")
        assert re.search(r">2\.0-beta</a>", text) and re.search(r">2\.1</a>", text)
        assert not re.search(r">1\.0</a>", text)
        _, first = await page(client, "/ui/acme/web/releases/?per_page=2")
        assert len(re.findall(r">(?:1\.0|2\.0-beta|2\.1)</a>", first)) == 2
        assert 'rel="next"' in first

    async def test_the_sidebar_shows_the_commits_a_release_stores(self, client: Client) -> None:
        await create_release(client)
        await sign_in(client)
        _, before = await page(client, "/ui/acme/web/releases/1.0/")
        assert "sentry-cli releases set-commits 1.0 --auto" in before
        commits = [
            {
                "id": "a" * 40,
                "repository": "acme/app",
                "message": "Fix <b>checkout</b>\nbody",
                "author_email": "dev@example.com",
            }
        ]
        resp = await client.put("/api/0/organizations/acme/releases/1.0/", json={"commits": commits}, headers=bearer())
        assert resp.status == 200, await resp.text()
        _, after = await page(client, "/ui/acme/web/releases/1.0/")
        facts = after[after.index("<dt>Commits</dt>") :]
        facts = facts[: facts.index("</dd>")]
        assert "<code>aaaaaaaaaaaa</code> in acme/app" in facts
        assert "Fix &lt;b&gt;checkout&lt;/b&gt;" in facts and "body" not in facts
        assert "dev@example.com" in facts

    async def test_empty_states_say_what_to_run(self, client: Client) -> None:
        await create_release(client)
        await sign_in(client)
        assert "sentry-cli sourcemaps upload --release 1.0" in (await page(client, "/ui/acme/web/releases/1.0/"))[1]
        assert "sentry-cli sourcemaps inject" in (await page(client, "/ui/acme/web/bundles/"))[1]


class TestBanner:
    async def test_serve_prints_the_ui_and_a_sign_in_link_that_works_once(self, tmp_path: Path) -> None:
        with running_server(tmp_path / "data", token="banner-token") as server:
            log = server.log()
            assert f"web UI:      {server.url}/ui/" in log
            (link,) = re.findall(r"sign in:\s+(\S+)", log)
            assert link.startswith(f"{server.url}/ui/signin/?code=")
            code = link.split("code=", 1)[1]
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as session:
                async with session.get(link) as shown:
                    assert shown.status == 200
                signin = f"{server.url}/ui/signin/"
                async with session.post(
                    signin, data={"code": code}, headers=SAME_ORIGIN, allow_redirects=False
                ) as first:
                    assert first.status == 303
                async with session.get(f"{server.url}/ui/", allow_redirects=False) as overview:
                    assert overview.status == 200
                async with session.post(
                    signin, data={"code": code}, headers=SAME_ORIGIN, allow_redirects=False
                ) as again:
                    assert again.status == 401


class TestBundleSearch:
    DEBUG_ID = "6a3b2c1d-0e0f-4a1b-8c2d-3e4f5a6b7c8d"

    async def test_a_debug_id_lands_on_the_source_file_and_a_bundle_id_on_its_bundle(self, client: Client) -> None:
        headers = {"~/app.js": {"debug-id": self.DEBUG_ID}, "~/app.js.map": {"debug-id": self.DEBUG_ID}}
        bundle = make_bundle(
            {"~/app.js": b"x()\n", "~/app.js.map": b"{}"},
            release="1.0",
            headers=headers,
            types={"~/app.js.map": "source_map"},
            debug_id="0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
        )
        await create_release(client)
        assert (await upload_bundle(client, bundle, version="1.0"))["state"] == "ok"
        await sign_in(client)
        base = "/ui/acme/web/bundles/"
        resp = await client.get(f"{base}?query={self.DEBUG_ID.upper()}", allow_redirects=False)
        assert resp.status == 303
        member = resp.headers["Location"]
        assert member.startswith(f"{base}0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/files/")
        _, text = await page(client, member)
        assert '<h1 class="filename">~/app.js</h1>' in text
        resp = await client.get(f"{base}?query=0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", allow_redirects=False)
        assert resp.headers["Location"] == f"{base}0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/"
        status, text = await page(client, f"{base}?query=1.0")  # a release: the API's own filter
        assert status == 200
        assert "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6" in text
