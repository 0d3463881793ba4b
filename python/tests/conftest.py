"""Fixtures: datasets in local folders, and a real S3 server (moto's) started for the session."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator

import pytest

# object_store reads AWS_* variables as the fallback for both sides; none of the machine's may
# reach these tests (a CA bundle for other endpoints, real credentials).
for _var in [v for v in os.environ if v.startswith("AWS_")]:
    del os.environ[_var]

ACCESS_KEY = "AKIATESTKEY0000SHARD"
SECRET_KEY = "sEcReT/tEsT+kEy0000shardsyncSECRET"


def write_files(root: Path, count: int, size: int = 4096, prefix: str = "part") -> Dict[str, str]:
    """``count`` objects of ``size`` random bytes plus an ``index.json`` sidecar under ``root``:
    ``{relative path: sha256}``."""
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(count):
        rel = f"{prefix}-{i:05d}.bin"
        data = os.urandom(size)
        (root / rel).write_bytes(data)
        written[rel] = hashlib.sha256(data).hexdigest()
    index = b'{"shards": %d}' % count
    (root / "meta").mkdir(exist_ok=True)
    (root / "meta" / "index.json").write_bytes(index)
    written["meta/index.json"] = hashlib.sha256(index).hexdigest()
    return written


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A source folder with 12 objects (11 shards and a sidecar)."""
    src = tmp_path / "src"
    write_files(src, 11)
    return src


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket, made with moto's unsigned ``PUT /bucket``."""
    name = f"b-{uuid.uuid4().hex[:12]}"
    req = urllib.request.Request(f"{s3_endpoint}/{name}", method="PUT")
    urllib.request.urlopen(req, timeout=10).close()
    return name


@pytest.fixture
def s3_options(s3_endpoint: str) -> Dict[str, object]:
    """Store options for moto, with the keys the CLI's ``--src-opt``/``--dst-opt`` take."""
    return {
        "endpoint": s3_endpoint,
        "allow_http": True,
        "region": "us-east-1",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
