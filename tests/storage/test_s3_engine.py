"""What only the S3 engine has: its configuration, one-line start-up failures (against the real
server, signatures checked), and memory that stays flat while a large object streams."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from relserver import cli
from relserver.config import Config
from relserver.models import StoredBlob
from relserver.storage import blobs_for, describe_blobs
from relserver.storage.blobs import BlobStoreUnavailable, StagedBlob
from relserver.storage.blobs.disk import DiskBlobStore
from relserver.storage.blobs.s3_config import BlobUrl, S3Settings

from ..s3_server import BUCKET, SeaweedServer

ENVIRON = {
    "AWS_ENDPOINT_URL": "http://s3.internal:9000",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret",
    "AWS_SESSION_TOKEN": "session-secret",
}


class TestConfiguration:
    def test_a_blob_url_selects_s3_and_none_keeps_the_data_dir(self, tmp_path: Path) -> None:
        from relserver.storage.blobs.s3 import S3BlobStore

        config = Config(data_dir=tmp_path)
        assert isinstance(blobs_for(config, ENVIRON), DiskBlobStore)
        store = blobs_for(config.with_overrides(blob_url="s3://artifacts/relserver/"), ENVIRON)
        assert isinstance(store, S3BlobStore)
        assert (store.url, store.tmp_dir) == (BlobUrl("artifacts", "relserver"), tmp_path / "tmp")
        assert store.settings == S3Settings(
            endpoint="http://s3.internal:9000",
            region="eu-west-1",
            access_key_id="AKIDEXAMPLE",
            secret_access_key="wJalrXUtnFEMI-secret",
            session_token="session-secret",
        )

    def test_the_banner_line_names_bucket_prefix_and_endpoint_and_never_a_secret(self) -> None:
        line = describe_blobs(Config(blob_url="s3://artifacts/rel"), ENVIRON)
        assert line == "S3, s3://artifacts/rel at http://s3.internal:9000"
        shown = line + repr(S3Settings.from_environ(ENVIRON))
        assert "secret" not in shown
        assert describe_blobs(Config(blob_url="s3://artifacts"), {}) == "S3, s3://artifacts at AWS S3"
        with_userinfo = {"AWS_ENDPOINT_URL": "https://key:secret@minio.internal:9000"}
        assert describe_blobs(Config(blob_url="s3://a"), with_userinfo) == "S3, s3://a at https://minio.internal:9000"

    @pytest.mark.parametrize(
        ("url", "parsed"),
        [
            ("s3://b", BlobUrl("b", "")),
            ("s3://b/", BlobUrl("b", "")),
            ("s3://b/a/deeper/prefix/", BlobUrl("b", "a/deeper/prefix")),
        ],
    )
    def test_blob_urls_name_a_bucket_and_a_prefix(self, url: str, parsed: BlobUrl) -> None:
        assert BlobUrl.parse(url) == parsed

    @pytest.mark.parametrize(
        "url", ["http://b/p", "b/p", "s3://", "s3://key:secret@b/p", "s3://b:9000/p", "s3://b/p?x=1"]
    )
    def test_the_cli_refuses_what_is_not_an_s3_url(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.parse_args(["--blob-url", url, "--port", "0"], {})
        assert exit_info.value.code == 2
        assert "not an S3 URL" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            cli.parse_args(["--port", "0"], {"RELSERVER_BLOB_URL": url})

    def test_the_blob_url_is_a_global_option_with_an_environment_twin(self) -> None:
        args = cli.parse_args(["--blob-url", "s3://b/p", "token", "list"], {})
        assert (args.command, args.blob_url) == ("token", "s3://b/p")
        args = cli.parse_args(["vacuum", "--blob-url=s3://b/q"], {})
        assert args.blob_url == "s3://b/q"
        config = cli.config_from_args(cli.parse_args(["--port", "0"], {"RELSERVER_BLOB_URL": "s3://b/r"}))
        assert config.blob_url == "s3://b/r"
        assert cli.config_from_args(cli.parse_args([], {"RELSERVER_BLOB_URL": ""})).blob_url is None

    def test_without_obstore_the_error_names_the_extra(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        # None in sys.modules makes the import fail as if the package were not installed.
        monkeypatch.setitem(sys.modules, "relserver.storage.blobs.s3", None)
        with pytest.raises(BlobStoreUnavailable, match=r"pip install 'relserver\[s3\]'"):
            blobs_for(Config(data_dir=tmp_path, blob_url="s3://b/p"), {})


class TestStartFailures:
    def _store(self, tmp_path: Path, url: str, settings: S3Settings) -> BlobStoreUnavailable:
        from relserver.storage.blobs.s3 import S3BlobStore

        with pytest.raises(BlobStoreUnavailable) as raised:
            S3BlobStore(url, tmp_path / "tmp", settings).prepare()
        message = str(raised.value)
        assert "\n" not in message, message
        assert settings.secret_access_key is None or settings.secret_access_key not in message
        return raised.value

    def test_nothing_listening_at_the_endpoint(self, s3_blob_url: str, tmp_path: Path) -> None:
        with contextlib.closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            closed = sock.getsockname()[1]
        settings = S3Settings(
            endpoint=f"http://127.0.0.1:{closed}",
            region="us-east-1",
            access_key_id="k",
            secret_access_key="not-shown",
        )
        error = self._store(tmp_path, s3_blob_url, settings)
        assert str(error).startswith(f"cannot use the blob store (S3, {s3_blob_url} at http://127.0.0.1:")
        assert str(error).endswith("cannot reach the endpoint (check AWS_ENDPOINT_URL)"), error

    def test_a_wrong_secret_key(self, s3_blob_url: str, s3_settings: S3Settings, tmp_path: Path) -> None:
        error = self._store(tmp_path, s3_blob_url, dataclasses.replace(s3_settings, secret_access_key="wrong-secret"))
        assert "the credentials were refused" in str(error), error

    def test_an_unknown_access_key(self, s3_blob_url: str, s3_settings: S3Settings, tmp_path: Path) -> None:
        error = self._store(tmp_path, s3_blob_url, dataclasses.replace(s3_settings, access_key_id="nobody"))
        assert "the credentials were refused" in str(error), error

    def test_a_missing_bucket(self, s3_settings: S3Settings, tmp_path: Path) -> None:
        error = self._store(tmp_path, "s3://no-such-bucket/p", s3_settings)
        assert str(error).endswith("no bucket named 'no-such-bucket'"), error

    def test_serve_says_it_in_one_line_and_exits_1(self, s3_server: SeaweedServer, tmp_path: Path) -> None:
        environ = {**os.environ, **s3_server.environ, "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
        argv = ["--port", "0", "--data-dir", str(tmp_path), "--blob-url", f"s3://{BUCKET}/serve"]
        result = subprocess.run(
            [sys.executable, "-m", "relserver", *argv], capture_output=True, text=True, timeout=60, env=environ
        )
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"relserver: cannot use the blob store (S3, s3://{BUCKET}/serve at http://"), line
        assert "wrong-secret" not in line

    def test_vacuum_says_it_in_one_line_too(self, s3_server: SeaweedServer, tmp_path: Path) -> None:
        data = tmp_path / "data"
        assert cli.main(["token", "create", "--data-dir", str(data)], {}) == 0
        environ = {**os.environ, **s3_server.environ}
        result = subprocess.run(
            [sys.executable, "-m", "relserver", "vacuum", "--data-dir", str(data), "--blob-url", "s3://nope-bucket"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ,
        )
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.endswith("no bucket named 'nope-bucket'"), line


# --- memory ------------------------------------------------------------------------------------

MiB = 1024 * 1024
BIG = 96 * MiB


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def peak_growth() -> Iterator[list[int]]:
    """RSS growth over the block, sampled every 5 ms: the largest one lands in the list."""
    before, peak, done = _rss(), [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss() - before)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss() - before)


def _pattern(size: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"relserver").digest() * (MiB // 32)
    for _ in range(size // MiB):
        yield block


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_a_large_blob_goes_up_and_streams_back_with_flat_memory(
    s3_blob_url: str, s3_settings: S3Settings, tmp_path: Path
) -> None:
    from relserver.storage.blobs.s3 import PART_CONCURRENCY, PART_SIZE, S3BlobStore

    store = S3BlobStore(s3_blob_url, tmp_path / "tmp", s3_settings)
    store.prepare()
    staged = store.stage()
    for block in _pattern(BIG):
        staged.write(block)
    blob = staged.finish()

    with peak_growth() as up:
        blob = store.promote(staged, blob)
    assert not staged.path.exists() and store.exists(blob.name)

    digest, size = hashlib.sha1(), 0
    with peak_growth() as down:
        for piece in store.open_range(blob.name):
            digest.update(piece)
            size += len(piece)
    assert (size, digest.hexdigest()) == (BIG, blob.sha1)
    # A 96 MiB blob: the upload holds at most its parts in flight, the download a few pieces;
    # neither grows with the blob (allocator noise aside).
    assert up[0] < PART_SIZE * PART_CONCURRENCY + 16 * MiB, up
    assert down[0] < 24 * MiB, down


def test_a_batch_of_uploads_with_one_failing_leaves_no_object_of_the_others(
    s3_blob_url: str, s3_settings: S3Settings, tmp_path: Path
) -> None:
    """A chunk POST promotes its chunks side by side: when one fails, the request fails, and
    the objects the others wrote would be named by no row until the collector's hourly hunt."""
    from relserver.storage.blobs.s3 import S3BlobStore

    store = S3BlobStore(s3_blob_url, tmp_path / "tmp", s3_settings)
    store.prepare()
    items: list[tuple[StagedBlob, StoredBlob]] = []
    for n in range(6):
        staged = store.stage()
        staged.write(b"chunk %d" % n)
        items.append((staged, staged.finish()))
    items[3][0].path.unlink()  # this one cannot be read: its upload fails
    with pytest.raises(FileNotFoundError):
        store.promote_many(items)
    assert list(store.iter_names()) == []
    # The same batch, whole, goes up.
    again: list[tuple[StagedBlob, StoredBlob]] = []
    for n in range(2):
        staged = store.stage()
        staged.write(b"chunk %d" % n)
        again.append((staged, staged.finish()))
    stored = store.promote_many(again)
    assert sorted(store.iter_names()) == sorted(b.name for b in stored)
