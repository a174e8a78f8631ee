"""Assembly on a shared catalog (DESIGN D10): a task is worked on under a lease, and when the
process holding it dies, another process takes it over once the lease runs out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from relserver.config import Config
from relserver.keys import backend_key, catalog_key
from relserver.services.assembly import ARTIFACT_BUNDLE, Assembler
from relserver.storage.sql.dialect import ts

from .bundle_helpers import split, upload_chunks
from .conftest import ClientFactory, create_release, sha1
from .test_assembly import basic_bundle, listing


async def test_an_assembly_whose_worker_died_is_taken_over_once_its_lease_runs_out(
    make_client: ClientFactory, config: Config, pg_url: str
) -> None:
    client = await make_client(config.with_overrides(database_url=pg_url))
    await create_release(client, "1.0")
    bundle = basic_bundle()
    chunks = split(bundle, 1024)
    await upload_chunks(client, chunks)
    key_checksum = sha1(bundle)
    # As if another process accepted the assembly, claimed it, and was killed with its lease running.
    async with client.app[catalog_key].write() as tx:
        org = await tx.organizations.get("acme")
        assert org is not None
        project = await tx.projects.get(org.id, "web")
        assert project is not None
        request = {"chunks": [sha1(c) for c in chunks], "projects": [project.id], "version": "1.0", "dist": None}
        await tx.tasks.set(org.id, ARTIFACT_BUNDLE, key_checksum, "created", request=request)
        now = datetime.now(UTC)
        until = ts(now + timedelta(seconds=1.5))
        assert until is not None
        assert await tx.tasks.claim(org.id, ARTIFACT_BUNDLE, key_checksum, "dead-process", str(ts(now)), until)

    other = Assembler(client.app[backend_key], lease_seconds=2, poll_seconds=0.1)
    try:
        await other.resume()
        for _ in range(100):
            await asyncio.sleep(0.1)
            async with client.app[catalog_key].read() as rtx:
                task = await rtx.tasks.get(org.id, ARTIFACT_BUNDLE, key_checksum)
            if task is not None and task.state == "ok":
                break
        assert task is not None and (task.state, task.detail) == ("ok", None)
        # Not before the dead process's lease ran out: nobody works on a task someone holds.
        assert task.date_updated >= now + timedelta(seconds=1.5)
    finally:
        await other.close()
    assert [f["name"] for f in await listing(client)] == ["~/app.js", "~/app.js.map"]
