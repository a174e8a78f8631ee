"""The web UI in a real browser: Debian's Chromium driven by Playwright's async API, against a
real relserver process that the real sentry-cli uploaded to.

One browser and one server for the module (the tests share the page and run in order, each
signing in again when it needs to). Screenshots of every page go to $UI_SCREENSHOT_DIR, or
to a directory under pytest's tmp dir. Without Chromium the module skips, and fails under CI.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from .conftest import missing_system_part, sentry_cli_env
from .server_process import ServerProcess, running_server

pytestmark = [pytest.mark.cli, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "ui-browser-token"
CHROMIUM = "/usr/bin/chromium"
# What this machine's Chromium needs to start headless and offline (no sandbox as root, no
# background calls to Google's hosts, which a closed network refuses one by one).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
HTML_NAME = "~/<img src=x onerror=alert(1)>.js"
APP_JS = b"function add(a,b){return a+b}\nconsole.log(add(1,2));\n//# sourceMappingURL=app.min.js.map\n"
APP_MAP = b'{"version":3,"file":"app.min.js","sources":["app.js"],"names":["add"],"mappings":"AAAA"}'


@dataclass
class Uploaded:
    server: ServerProcess
    debug_id: str
    minified: bytes
    single: bytes


def run_cli(sentry_cli: Path, home: Path, server: ServerProcess, *args: str) -> str:
    env = sentry_cli_env(home, url=server.url, auth_token=TOKEN, org="acme")
    done = subprocess.run([str(sentry_cli), *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory, sentry_cli: Path) -> Iterator[Uploaded]:
    """A server, and what a build sends it: an injected bundle and one file uploaded by itself."""
    root = tmp_path_factory.mktemp("ui-browser")
    with running_server(root / "data", token=TOKEN) as server:
        dist = root / "dist"
        dist.mkdir()
        (dist / "app.min.js").write_bytes(APP_JS)
        (dist / "app.min.js.map").write_bytes(APP_MAP)
        run_cli(sentry_cli, root, server, "releases", "new", "1.0", "-p", "web")
        run_cli(sentry_cli, root, server, "sourcemaps", "inject", str(dist))
        minified = (dist / "app.min.js").read_bytes()
        (debug_id,) = re.findall(rb"//# debugId=([0-9a-f-]{36})", minified)
        run_cli(sentry_cli, root, server, "sourcemaps", "upload", "--release", "1.0", "-p", "web", "--wait", str(dist))
        single = b"console.log('one by one')\n"
        (root / "one.js").write_bytes(single)
        run_cli(sentry_cli, root, server, "releases", "files", "1.0", "upload", str(root / "one.js"), HTML_NAME)
        yield Uploaded(server, debug_id.decode(), minified, single)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("UI_SCREENSHOT_DIR")
    target = Path(wanted) if wanted else tmp_path_factory.mktemp("ui-screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def page(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One Chromium for the module, with an empty profile of its own."""
    if shutil.which(CHROMIUM) is None:
        missing_system_part("Debian's chromium is not installed (make system-deps installs it as root)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing_system_part("playwright is not installed (the test extras have it)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1200, "height": 800},
        )
        try:
            opened: Any = context.pages[0] if context.pages else await context.new_page()
            # A script that runs would be a failed escape: every dialog fails the test.
            dialogs: list[str] = []
            opened.on("dialog", lambda d: dialogs.append(d.message))
            opened.dialogs = dialogs
            yield opened
            assert dialogs == [], "a script ran in the page"
        finally:
            await context.close()


async def sign_in(page: Any, uploaded: Uploaded, token: str = TOKEN) -> None:
    await page.goto(uploaded.server.url + "/ui/")
    if "/ui/login/" not in page.url:
        return
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r".*/ui/$"))


async def shot(page: Any, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def test_signing_in_with_a_token_opens_the_overview(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await page.goto(uploaded.server.url + "/ui/acme/web/releases/")
    assert "/ui/login/" in page.url
    await shot(page, shots, "login")
    await page.get_by_label("API token").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    # Back where the browser was sent from, signed in.
    await expect(page.get_by_role("heading", level=1)).to_have_text("Releases of acme/web")
    await shot(page, shots, "releases")
    cookies = await page.context.cookies()
    (session,) = [c for c in cookies if c["name"] == "relserver_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/ui/"
    assert await page.evaluate("document.cookie") == ""
    await page.get_by_role("link", name="Overview").first.click()
    await expect(page.get_by_role("row", name=re.compile(r"^web "))).to_be_visible()
    await shot(page, shots, "overview")


async def test_a_debug_id_search_lands_on_the_file_which_downloads_as_uploaded(
    page: Any, uploaded: Uploaded, shots: Path
) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.goto(uploaded.server.url + "/ui/acme/web/bundles/")
    await shot(page, shots, "bundles")
    await page.get_by_label("Filter by debug ID, bundle ID, release or dist").fill(uploaded.debug_id.upper())
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("~/app.min.js")
    await expect(page.get_by_text(uploaded.debug_id, exact=True)).to_be_visible()
    await expect(page.get_by_text("app.min.js.map", exact=True)).to_be_visible()  # its source-map reference
    await shot(page, shots, "bundle-file")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download").click()
    download = await info.value
    assert download.suggested_filename == "app.min.js"
    assert Path(await download.path()).read_bytes() == uploaded.minified
    await page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=re.compile("-")).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Artifact bundle")
    await shot(page, shots, "bundle")


async def test_a_file_found_by_name_opens_and_downloads_as_uploaded(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.goto(uploaded.server.url + "/ui/acme/web/releases/")
    await page.get_by_role("link", name="1.0", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Release 1.0")
    await shot(page, shots, "release")
    await page.get_by_label("Filter by name").fill("onerror")
    await page.get_by_role("button", name="Search").click()
    assert "query=onerror" in page.url  # the state is in the URL: bookmarkable
    rows = page.locator("table.files tbody tr")
    await expect(rows).to_have_count(1)
    await rows.get_by_role("link", name=HTML_NAME).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(HTML_NAME)
    await shot(page, shots, "file")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download").click()
    assert Path(await (await info.value).path()).read_bytes() == uploaded.single


async def test_a_name_containing_html_is_shown_as_text(page: Any, uploaded: Uploaded) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.goto(uploaded.server.url + "/ui/acme/web/releases/1.0/")
    await expect(page.get_by_role("link", name=HTML_NAME)).to_be_visible()
    assert await page.locator("main img").count() == 0
    assert page.dialogs == []


async def test_the_live_feed_shows_the_uploads_calls(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.get_by_role("link", name="Activity").click()
    feed = page.locator("table.calls")
    for path in ("/chunk-upload/", "/artifactbundle/assemble/", "/releases/"):
        await expect(feed.get_by_text(re.compile(re.escape(path))).first).to_be_visible()
    await expect(feed.get_by_text(re.compile(r"^sentry-cli/2\.58\.6")).first).to_be_visible()
    await shot(page, shots, "activity")
    # Newest first: the last call of the story (the single-file upload) leads.
    first = await feed.locator("tbody tr").first.inner_text()
    assert "/files/" in first or "/assemble/" in first or "/chunk-upload/" in first, first


async def test_a_form_posted_from_another_origin_is_refused(page: Any, uploaded: Uploaded, shots: Path) -> None:
    """Another port of the same host is the same site: the Strict cookie goes along, so only
    the origin check stands between it and the session."""
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    calls_before = await _feed_length(page, uploaded)
    target = uploaded.server.url + "/ui/activity/clear/"
    evil = web.Application()

    async def form(_: web.Request) -> web.Response:
        html = f'<form method="post" action="{target}"><button>Win a prize</button></form>'
        return web.Response(text=html, content_type="text/html")

    evil.router.add_get("/", form)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.get_by_role("button", name="Win a prize").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Refused: not from this server's pages")
        await expect(page.get_by_text("Sec-Fetch-Site: same-site", exact=False)).to_be_visible()
        await expect(page.get_by_text(uploaded.server.url, exact=True)).to_be_visible()
        await shot(page, shots, "refused")
    finally:
        await runner.cleanup()
    assert await _feed_length(page, uploaded) >= calls_before  # nothing was cleared


async def _feed_length(page: Any, uploaded: Uploaded) -> int:
    await page.goto(uploaded.server.url + "/ui/activity/")
    count: int = await page.locator("table.calls tbody tr").count()
    return count


async def test_a_pasted_stack_trace_shows_each_frames_trail(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.goto(uploaded.server.url + "/ui/acme/web/resolve/")
    trace = "TypeError: boom\n    at add (https://example.com/app.min.js:1:10)\n"
    await page.get_by_label("Stack trace or event JSON").fill(trace)
    await page.get_by_label("Release").fill("1.0")
    await page.get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("heading", name=re.compile(r"of 1 frames resolved"))).to_be_visible()
    await expect(page.locator(".steps li").first).to_be_visible()
    await shot(page, shots, "resolve")


async def test_deleting_asks_first_then_the_file_is_gone(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.goto(uploaded.server.url + "/ui/acme/web/releases/1.0/?query=onerror")
    await page.locator("table.files tbody tr").get_by_role("link", name="Delete").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Delete {HTML_NAME}?")
    await shot(page, shots, "confirm-delete")
    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(HTML_NAME)  # nothing happened
    await page.get_by_role("link", name="Delete…").click()
    await page.get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("status")).to_have_text(f"Deleted {HTML_NAME}.")
    await expect(page.get_by_role("link", name=HTML_NAME)).to_have_count(0)
    await expect(page.get_by_role("link", name="~/app.min.js", exact=True)).to_be_visible()


async def test_revoking_the_token_ends_the_session(page: Any, uploaded: Uploaded, shots: Path) -> None:
    from playwright.async_api import expect

    await sign_in(page, uploaded)
    await page.get_by_role("link", name="Tokens").click()
    await page.get_by_label("Label").fill("from the page")
    await page.get_by_label("project:read", exact=True).check()
    await page.get_by_role("button", name="Create token").click()
    minted = (await page.locator("#new-token").inner_text()).strip()
    row = page.get_by_role("row", name=re.compile("from the page"))
    token_id = (await row.locator("td").first.inner_text()).strip()
    await shot(page, shots, "tokens")
    await page.context.clear_cookies()
    await sign_in(page, uploaded, minted)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    # `relserver token revoke` beside the running server, as an operator would.
    await asyncio.to_thread(admin, uploaded, "token", "revoke", token_id)
    await page.reload()
    assert "/ui/login/" in page.url
    await expect(page.get_by_label("API token")).to_be_visible()
    await page.context.clear_cookies()


# The page's width, and the widest element outside a scrolling box (what a phone would pan to).
WIDEST = """() => {
  let worst = {width: document.documentElement.scrollWidth, what: "page"};
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest(".scroll")) continue;
    const right = el.getBoundingClientRect().right;
    if (right > worst.width) worst = {width: right, what: el.outerHTML.slice(0, 120)};
  }
  return worst;
}"""


def admin(uploaded: Uploaded, *args: str) -> str:
    data_dir = str(uploaded.server.data_dir)
    command = [sys.executable, "-m", "relserver", *args, "--data-dir", data_dir]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


async def test_the_pages_read_on_a_phone(page: Any, uploaded: Uploaded, shots: Path) -> None:
    await sign_in(page, uploaded)
    await page.set_viewport_size({"width": 390, "height": 844})
    try:
        await page.goto(uploaded.server.url + "/ui/acme/web/releases/1.0/")
        # Nothing but the tables' own scrolling boxes is wider than the screen.
        await shot(page, shots, "release-phone")
        wide = await page.evaluate(WIDEST)
        assert wide["width"] <= 390, wide
    finally:
        await page.set_viewport_size({"width": 1200, "height": 800})
