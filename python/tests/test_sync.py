"""sync, check, diff and require_consistent on local folders."""

from __future__ import annotations

import json
import os
import signal
import time
import threading
from pathlib import Path

import pytest

import shardsync
from conftest import sha256_of, write_files


def test_sync_copies_everything_then_an_incremental_sync_copies_nothing(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    first = shardsync.sync(str(dataset), str(dst))
    assert first.consistent
    assert (first.shards_total, first.shards_copied, first.shards_failed) == (12, 12, 0)
    assert first.committed
    for f in dataset.rglob("*"):
        if f.is_file() and "_shardsync" not in f.parts:  # each side's own manifest
            assert sha256_of(dst / f.relative_to(dataset)) == sha256_of(f)

    second = shardsync.sync(str(dataset), str(dst))
    assert second.consistent
    assert (second.shards_copied, second.shards_skipped, second.bytes_copied) == (0, 12, 0)
    assert second.dst_digest == first.dst_digest == first.src_digest


def test_a_rewritten_shard_is_the_only_one_copied(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shardsync.sync(str(dataset), str(dst))
    (dataset / "part-00003.bin").write_bytes(b"a new version of this shard")
    plan = shardsync.diff(str(dataset), str(dst))
    assert not plan.is_clean
    assert [(i.path, i.state) for i in plan if i.state != "same"] == [("part-00003.bin", "changed")]
    report = shardsync.sync(str(dataset), str(dst))
    assert report.shards_copied == 1 and report.consistent
    assert shardsync.diff(str(dataset), str(dst)).is_clean


def test_require_consistent_raises_drift_error_carrying_the_report(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shardsync.sync(str(dataset), str(dst))
    ok = shardsync.require_consistent(str(dataset), str(dst))
    assert ok.consistent and ok.src_digest == shardsync.Manifest.load(str(dst)).digest

    (dst / "part-00005.bin").write_bytes(b"truncated")
    with pytest.raises(shardsync.DriftError) as caught:
        shardsync.require_consistent(str(dataset), str(dst))
    err = caught.value
    assert err.exit_code == 1
    assert "part-00005.bin" in str(err)
    assert not err.report.consistent
    assert [(f.kind, f.path) for f in err.report.findings] == [("size_mismatch", "part-00005.bin")]


def test_extras_leave_a_sync_inconsistent_until_delete(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shardsync.sync(str(dataset), str(dst))
    (dst / "stray.bin").write_bytes(b"not the source's")
    kept = shardsync.sync(str(dataset), str(dst))
    assert not kept.consistent
    assert [(f.kind, f.path) for f in kept.findings] == [("extra", "stray.bin")]
    cleaned = shardsync.sync(str(dataset), str(dst), delete=True)
    assert cleaned.consistent and cleaned.shards_deleted == 1
    assert not (dst / "stray.bin").exists()


def test_dry_run_writes_nothing(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    report = shardsync.sync(str(dataset), str(dst), dry_run=True)
    assert report.mode == "dry-run" and not report.consistent
    assert not dst.exists() or not any(dst.iterdir())


def test_report_renders_as_the_cli_does(dataset: Path, tmp_path: Path) -> None:
    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), verify="deep")
    as_dict = report.to_dict()
    assert as_dict == json.loads(report.to_json())
    assert as_dict["consistent"] is True and as_dict["verify"] == "deep"
    assert as_dict["shards_copied"] == report.shards_copied == 12
    assert report.inconsistency == as_dict["inconsistency"] == 0.0
    assert report.seconds_per_shard == as_dict["seconds_per_shard"]
    assert "consistent" in report.to_markdown()
    assert "CONSISTENT" in report.to_text()


def test_calls_from_several_threads_run_at_once(tmp_path: Path) -> None:
    sources = []
    for n in range(4):
        src = tmp_path / f"src{n}"
        write_files(src, 20, prefix=f"t{n}")
        sources.append(src)
    reports: dict = {}
    errors: list = []

    def run(n: int) -> None:
        try:
            reports[n] = shardsync.sync(str(sources[n]), str(tmp_path / f"dst{n}"), jobs=2)
        except BaseException as e:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(reports) == [0, 1, 2, 3]
    assert all(r.consistent and r.shards_copied == 21 for r in reports.values())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_its_own_calls(dataset: Path, tmp_path: Path) -> None:
    # The parent's runtime threads do not survive a fork (DataLoader workers are forked).
    shardsync.sync(str(dataset), str(tmp_path / "parent"))
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 3
        try:
            code = 0 if shardsync.sync(str(dataset), str(tmp_path / "child")).consistent else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's sync did not finish")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shardsync.check(str(dataset), str(tmp_path / "child")).consistent


def test_write_source_manifest_false_leaves_the_source_untouched(dataset: Path, tmp_path: Path) -> None:
    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), write_source_manifest=False)
    assert report.consistent
    assert not (dataset / "_shardsync").exists()
    shardsync.sync(str(dataset), str(tmp_path / "dst2"))
    assert (dataset / "_shardsync" / "manifest.json").exists()

