"""Schema-driven fuzzing of every route: no 5xx, and every 4xx Sentry-shaped (invariants 8, 9).

schemathesis generates valid, schema-derived and malformed requests from `fuzz_schema`, an
OpenAPI description of all routes (Sentry's published one lacks chunk upload, the assembles,
artifact bundles, the lookup and `files/source-maps`), and sends them to a real server on a
real socket, seeded with a release, files and an artifact bundle so valid requests reach the
handlers' logic. The run is derandomized and bounded (`FUZZ_EXAMPLES` per operation) so it
is the same in CI every time; set RELSERVER_FUZZ_EXAMPLES higher (and
RELSERVER_FUZZ_RANDOM=1) for a longer hunt.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from relserver.testing import RelServer

from .bundle_helpers import make_bundle, zip_path
from .conftest import engines_of_the_run
from .fuzz_schema import Seed, relserver_openapi
from .sentry_shape import sentry_shape_problem

FUZZ_EXAMPLES = int(os.environ.get("RELSERVER_FUZZ_EXAMPLES", "25"))
DEBUG_ID = "2c8e1b3c-8a57-4d8c-9c1f-0123456789ab"
BUNDLE_ID = "b0b0b0b0-0000-4000-8000-00000000f022"
DOOMED_BUNDLE_ID = "b0b0b0b0-0000-4000-8000-00000000dead"

SEED = Seed(
    org="acme",
    project="web",
    release="1.0",
    # The classic file, then the bundle member as its archive-entry id.
    file_ids=("1", base64.urlsafe_b64encode(b"_~/bundled.js").decode()),
    bundle_id=BUNDLE_ID,
    bundle_file_id=base64.urlsafe_b64encode(zip_path("~/bundled.js").encode()).decode(),
    doomed_release="doomed",
    doomed_file_id="2",
    doomed_bundle_id=DOOMED_BUNDLE_ID,
)

schema = schemathesis.openapi.from_dict(relserver_openapi(SEED))


def _chunk_body(data: bytes) -> tuple[bytes, str]:
    name = hashlib.sha1(data).hexdigest()
    head = f'--b\r\nContent-Disposition: form-data; name="file_gzip"; filename="{name}"\r\n\r\n'.encode()
    return head + gzip.compress(data) + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"


def _assemble(server: RelServer, bundle: bytes, version: str) -> None:
    checksum = hashlib.sha1(bundle).hexdigest()
    body, content_type = _chunk_body(bundle)
    server.request("POST", "/api/0/organizations/acme/chunk-upload/", body, headers={"Content-Type": content_type})
    assemble = {"checksum": checksum, "chunks": [checksum], "projects": ["web"], "version": version}
    server.request("POST", "/api/0/organizations/acme/artifactbundle/assemble/", assemble)
    server.wait_for_assembly()
    answer = server.request("POST", "/api/0/organizations/acme/artifactbundle/assemble/", assemble)
    assert answer["state"] == "ok", answer


@pytest.fixture(scope="module")
def fuzz_server(request: pytest.FixtureRequest) -> Iterator[RelServer]:
    with engines_of_the_run(request) as engines, RelServer(**engines) as server:
        server.create_release("1.0")
        server.create_release("doomed")
        server.upload_file("1.0", "~/app.js", b"function a(){}\n", headers=["Sourcemap: app.js.map"])
        server.upload_file("1.0", "~/doomed.js", b"doomed\n")
        server.request("POST", "/api/0/organizations/acme/releases/1.0/deploys/", {"environment": "production"})
        headers = {"~/bundled.js": {"debug-id": DEBUG_ID}}
        _assemble(
            server, make_bundle({"~/bundled.js": b"b()\n"}, release="1.0", headers=headers, debug_id=BUNDLE_ID), "1.0"
        )
        _assemble(server, make_bundle({"~/x.js": b"x\n"}, release="1.0", debug_id=DOOMED_BUNDLE_ID), "1.0")
        yield server


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("RELSERVER_FUZZ_RANDOM") != "1",
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_or_forbids_gets_a_5xx_or_an_unshaped_error(
    case: Any, fuzz_server: RelServer
) -> None:
    response = case.call(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {fuzz_server.token}"})
    # schemathesis hands headers over with lowercase names and lists of values.
    kind = response.headers.get("content-type", [""])[0].split(";")[0]
    problem = sentry_shape_problem(response.status_code, kind, response.content or b"")
    assert problem is None, f"{case.method} {case.formatted_path}: {problem}\n{case.as_curl_command()}"
