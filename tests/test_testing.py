"""relserver as users' test fixture: the pytest plugin through pytester, and RelServer itself."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from relserver.testing import RelServer, RelServerError

DOCS = Path(__file__).parent.parent / "docs" / "testing.md"
# Which runner each ```python block of docs/testing.md gets, by its index there: a user's test
# file (with the sentry-cli fixture it calls) or a plain script.
PYTEST_EXAMPLES = [(0, "sentry_cli_3"), (1, "sentry_cli"), (2, "sentry_cli_3")]
SCRIPT_EXAMPLE = 3


def doc_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)


class TestPlugin:
    def test_a_users_test_file_with_only_the_public_fixtures_passes(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            def test_story(relserver):
                relserver.create_release("1.0")
                relserver.upload_file("1.0", "~/app.js", b"var a;", headers=["Sourcemap: app.js.map"])
                (record,) = relserver.list_files("1.0")
                assert (record.name, record.headers["Sourcemap"], record.size) == ("~/app.js", "app.js.map", 6)
                assert relserver.read_file("1.0", "~/app.js") == b"var a;"
                assert [c.status for c in relserver.calls] == [201, 201, 200, 200, 200]
                env = relserver.sentry_env(project="mobile")
                assert env["SENTRY_URL"] == relserver.url and env["SENTRY_PROJECT"] == "mobile"

            def test_unimplemented_calls_are_recorded(relserver):
                import pytest
                from relserver.testing import RelServerError
                with pytest.raises(RelServerError) as error:
                    relserver.request("GET", "/api/0/organizations/acme/integrations/")
                assert error.value.status == 404
                assert [c.path for c in relserver.unimplemented_calls] == ["/api/0/organizations/acme/integrations/"]
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=2)

    def test_two_tests_do_not_see_each_others_data_or_faults(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            def test_first(relserver):
                relserver.create_release("1.0")
                relserver.upload_file("1.0", "~/a.js", b"a")
                relserver.fail("/api/0/organizations/*/releases/", 503, times=None)

            def test_second(relserver):
                # A new server: no release 1.0, no fault.
                relserver.create_release("2.0")
                assert relserver.request("GET", "/api/0/organizations/acme/releases/")[0]["version"] == "2.0"
                assert len(relserver.request("GET", "/api/0/organizations/acme/releases/")) == 1
            """
        )
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)

    def test_a_fault_for_one_path_leaves_others_alone(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest
            from relserver.testing import RelServerError

            def test_fault(relserver):
                relserver.create_release("1.0")
                relserver.fail("/api/0/projects/*/files/", 413, method="POST", body={"detail": "too big"}, times=2)
                for _ in range(2):
                    with pytest.raises(RelServerError) as error:
                        relserver.upload_file("1.0", "~/a.js", b"a")
                    assert (error.value.status, error.value.body) == (413, {"detail": "too big"})
                relserver.create_release("2.0")  # another path: untouched
                assert relserver.upload_file("1.0", "~/a.js", b"a").name == "~/a.js"  # the fault is used up

            def test_delay_and_cap(relserver):
                import time
                relserver.delay("/api/0/organizations/acme/releases/", 0.3, method="POST")
                started = time.monotonic()
                relserver.create_release("1.0")
                assert time.monotonic() - started >= 0.3
                relserver.cap_request_size("/api/0/projects/*", 100)
                with pytest.raises(RelServerError) as error:
                    relserver.upload_file("1.0", "~/big.js", b"x" * 1000)
                assert error.value.status == 413
            """
        )
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)

    def test_the_server_and_its_dir_are_gone_after_the_test(self, pytester: pytest.Pytester, tmp_path: Path) -> None:
        record = tmp_path / "seen.json"
        pytester.makepyfile(
            f"""
            import json

            def test_uses_the_server(relserver):
                relserver.create_release("1.0")
                relserver.upload_file("1.0", "~/a.js", b"a")
                with open({str(record)!r}, "w") as f:
                    json.dump({{"url": relserver.url, "dir": str(relserver.data_dir)}}, f)
            """
        )
        pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        threads_before = {t.ident for t in threading.enumerate()}
        pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        seen = json.loads(record.read_text())
        assert not Path(seen["dir"]).exists()
        leftover = [t.name for t in threading.enumerate() if t.ident not in threads_before and t.is_alive()]
        assert leftover == []
        open_in_dir = [p for p in Path("/proc/self/fd").iterdir() if seen["dir"] in _target(p)]
        assert open_in_dir == []

    def test_the_session_fixture_survives_many_tests_and_resets_faults(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.parametrize("i", range(20))
            def test_many(relserver_session, i):
                assert relserver_session.calls == []  # reset after every test
                relserver_session.create_release(f"v{i}")
                relserver_session.fail("/api/0/organizations/acme/releases/", 500, times=None)

            def test_data_stays(relserver_session):
                assert len(relserver_session.request("GET", "/api/0/organizations/acme/releases/")) == 20
            """
        )
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=21)


def _target(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:
        return ""


class TestRelServer:
    def test_helper_errors_carry_status_and_body(self) -> None:
        with RelServer() as server, pytest.raises(RelServerError) as error:
            server.request("GET", "/api/0/organizations/acme/releases/nope/")
        assert (error.value.status, error.value.body) == (404, {"detail": "The requested resource does not exist"})

    def test_context_manager_without_pytest(self) -> None:
        with RelServer() as server:
            server.create_release("1.0")
            data_dir = server.data_dir
            assert server.request("GET", "/api/0/organizations/acme/releases/1.0/")["version"] == "1.0"
        assert not data_dir.exists()

    async def test_the_async_context_manager_closes_its_server_on_exit(self) -> None:
        async with RelServer() as server:
            release = await asyncio.to_thread(server.create_release, "1.0")
            assert release["version"] == "1.0"
            data_dir, port = server.data_dir, int(server.url.rsplit(":", 1)[1])
        assert not data_dir.exists()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    def test_an_explicit_data_dir_is_kept(self, tmp_path: Path) -> None:
        with RelServer(tmp_path / "keep") as server:
            server.create_release("1.0")
        with RelServer(tmp_path / "keep") as server:
            assert server.request("GET", "/api/0/organizations/acme/releases/1.0/")["version"] == "1.0"

    def test_helpers_see_bundle_members(self) -> None:
        from .bundle_helpers import make_bundle, split
        from .conftest import sha1

        bundle = make_bundle(
            {"~/b.js": b"bundled"}, headers={"~/b.js": {"debug-id": "2c8e1b3c-8a57-4d8c-9c1f-0123456789ab"}}
        )
        with RelServer() as server:
            server.create_release("1.0")
            chunks = split(bundle, 1024)
            body = {
                "checksum": sha1(bundle),
                "chunks": [sha1(c) for c in chunks],
                "projects": ["web"],
                "version": "1.0",
            }
            server.request("POST", "/api/0/organizations/acme/artifactbundle/assemble/", body)
            form = (
                b"".join(
                    f'--b\r\nContent-Disposition: form-data; name="file"; filename="{sha1(c)}"\r\n\r\n'.encode()
                    + c
                    + b"\r\n"
                    for c in chunks
                )
                + b"--b--\r\n"
            )
            server.request(
                "POST",
                "/api/0/organizations/acme/chunk-upload/",
                form,
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            server.request("POST", "/api/0/organizations/acme/artifactbundle/assemble/", body)
            server.wait_for_assembly()
            assert [f.name for f in server.list_files("1.0")] == ["~/b.js"]
            assert server.read_file("1.0", "~/b.js") == b"bundled"
            (listed,) = server.list_bundles()
            assert [f["filePath"] for f in server.bundle_files(listed["bundleId"])] == ["~/b.js"]
            assert server.lookup(debug_id="2c8e1b3c-8a57-4d8c-9c1f-0123456789ab")[0]["resolved_with"] == "debug-id"


class TestDocumentedExamples:
    """docs/testing.md runs here, so it cannot rot."""

    def test_every_documented_example_is_run(self) -> None:
        run = sorted([index for index, _ in PYTEST_EXAMPLES] + [SCRIPT_EXAMPLE])
        assert run == list(range(len(doc_examples())))

    @pytest.mark.cli
    @pytest.mark.parametrize(("index", "cli"), PYTEST_EXAMPLES)
    def test_pytest_example(
        self,
        pytester: pytest.Pytester,
        monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest,
        index: int,
        cli: str,
    ) -> None:
        monkeypatch.setenv("SENTRY_CLI", str(request.getfixturevalue(cli)))
        pytester.makepyfile(doc_examples()[index])
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)

    @pytest.mark.cli
    def test_script_example(self, sentry_cli_3: Path, tmp_path: Path) -> None:
        script = tmp_path / "example.py"
        script.write_text(doc_examples()[SCRIPT_EXAMPLE])
        env = {**os.environ, "SENTRY_CLI": str(sentry_cli_3), "HOME": str(tmp_path)}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
