"""The examples in examples/ run as documented, on local folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import shardsync

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env={**os.environ}
    )


def test_preflight_hands_over_to_the_training_command_with_the_digest(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    digest = shardsync.sync(str(dataset), str(dst)).dst_digest
    train = "import os; print('digest', os.environ['SHARDSYNC_DATASET_DIGEST'])"
    done = run(str(EXAMPLES / "preflight.py"), str(dataset), str(dst), "--", sys.executable, "-c", train)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"digest {digest}"
    assert digest in done.stderr  # logged


def test_preflight_refuses_to_train_on_a_drifted_dataset(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shardsync.sync(str(dataset), str(dst))
    (dst / "part-00000.bin").unlink()
    done = run(str(EXAMPLES / "preflight.py"), str(dataset), str(dst), "--", sys.executable, "-c", "print('trained')")
    assert done.returncode == 1
    assert "trained" not in done.stdout
    assert "part-00000.bin" in done.stderr


def test_preflight_demo_runs() -> None:
    done = run(str(EXAMPLES / "preflight.py"), "--demo")
    assert done.returncode == 0, done.stderr
    assert "training on dataset" in done.stdout


def test_load_verified_reads_every_row_after_the_check() -> None:
    pytest.importorskip("pyarrow")
    done = run(str(EXAMPLES / "load_verified.py"), "--demo")
    assert done.returncode == 0, done.stderr
    assert "loaded 1000 rows from 4 shards" in done.stdout
