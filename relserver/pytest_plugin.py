"""The pytest plugin (entry point `pytest11`): fixtures that hand a test a running relserver.

def test_my_build_uploads_its_maps(relserver):
    subprocess.run(["npm", "run", "build"], env={**os.environ, **relserver.sentry_env()}, check=True)
    assert {f.name for f in relserver.list_files("1.0")} >= {"~/app.js", "~/app.js.map"}
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import RelServer

_SESSION_SERVERS: list[RelServer] = []


@pytest.fixture
def relserver() -> Iterator[RelServer]:
    """A fresh relserver for this test: its own port, data dir, token, faults and call log."""
    with RelServer() as server:
        yield server


@pytest.fixture(scope="session")
def relserver_session() -> Iterator[RelServer]:
    """One relserver for the whole session (faster); faults and the call log reset per test."""
    with RelServer() as server:
        _SESSION_SERVERS.append(server)
        try:
            yield server
        finally:
            _SESSION_SERVERS.remove(server)


@pytest.fixture(autouse=True)
def _relserver_reset_session_servers() -> Iterator[None]:
    yield
    for server in _SESSION_SERVERS:
        server.reset()
