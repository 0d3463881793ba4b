"""Ctrl-C stops a sync as the CLI's SIGINT does: what is committed is verified, the rest is not
claimed, and the same call finishes the job."""

from __future__ import annotations

import _thread
import signal
import threading
from pathlib import Path

import pytest

import shardsync
from conftest import sha256_of, write_files


def assert_manifest_claims_only_verified_data(dst: Path) -> int:
    """Every entry of the destination's manifest is there with the bytes it claims."""
    try:
        manifest = shardsync.Manifest.load(str(dst))
    except shardsync.ManifestError:
        return 0
    for entry in manifest:
        assert sha256_of(dst / entry.path) == entry.sha256, entry.path
    return len(manifest)


def test_a_callback_that_raises_keyboard_interrupt_stops_the_sync(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_files(src, 1000, size=2048)

    def stop_after_the_first_copy(event: shardsync.ProgressEvent) -> None:
        if event.kind == "object_done":
            raise KeyboardInterrupt

    with pytest.raises(shardsync.Interrupted) as caught:
        shardsync.sync(str(src), str(dst), jobs=1, progress=stop_after_the_first_copy)
    err = caught.value
    assert isinstance(err, KeyboardInterrupt) and err.exit_code == 130
    assert err.report is not None and err.report.interrupted
    assert err.report.shards_not_started > 0
    assert err.report.shards_copied < 1001
    claimed = assert_manifest_claims_only_verified_data(dst)
    assert claimed == err.report.shards_copied

    finished = shardsync.sync(str(src), str(dst))
    assert finished.consistent and finished.shards_copied == 1001 - claimed


def test_ctrl_c_on_the_main_thread_cancels_the_sync(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_files(src, 1500, size=1024)
    started, pressed = threading.Event(), threading.Event()

    def press_ctrl_c() -> None:
        started.wait(60)
        _thread.interrupt_main()  # what SIGINT does: the main thread sees it at its next check
        pressed.set()

    # A process started in the background (`cmd &` in a script) inherits SIGINT ignored, and then
    # interrupt_main() does nothing: handle it as an interactive Python does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()

    def on_event(event: shardsync.ProgressEvent) -> None:
        if event.kind == "stage_started" and event.stage == "copying":
            started.set()
            # Wait (without the GIL) until the other thread has pressed Ctrl-C: on a busy
            # machine it might otherwise not run before the whole sync is done.
            pressed.wait(60)

    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            # At 256 KiB/s the copies take about 6 s: Ctrl-C always lands while they run.
            shardsync.sync(
                str(src), str(dst), jobs=1, progress=on_event, bwlimit=256 * 1024, bwlimit_burst=16 * 1024
            )
    finally:
        presser.join()
        signal.signal(signal.SIGINT, previous)
    err = caught.value
    assert isinstance(err, shardsync.Interrupted)
    assert err.report is not None and err.report.interrupted
    assert err.report.shards_copied + err.report.shards_not_started + err.report.shards_failed == 1501
    assert assert_manifest_claims_only_verified_data(dst) == err.report.shards_copied


def test_ctrl_c_stops_a_deep_check_which_wrote_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_files(src, 1000, size=2048)
    shardsync.sync(str(src), str(dst))
    before = sorted(p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file())
    seen = []

    def stop_at_the_first_object(event: shardsync.ProgressEvent) -> None:
        seen.append(event.kind)
        if event.kind == "object_done":
            raise KeyboardInterrupt

    with pytest.raises(shardsync.Interrupted) as caught:
        shardsync.check(str(src), str(dst), deep=True, jobs=1, progress=stop_at_the_first_object)
    assert caught.value.report is None
    assert seen.count("object_done") == 1  # no callback after the one that raised
    assert sorted(p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file()) == before


def test_a_callback_that_fails_stops_the_sync_and_its_exception_is_raised(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_files(src, 1000, size=2048)

    def broken_logger(event: shardsync.ProgressEvent) -> None:
        if event.kind == "object_done":
            raise RuntimeError("the metrics server is down")

    with pytest.raises(RuntimeError, match="metrics server"):
        shardsync.sync(str(src), str(dst), jobs=1, progress=broken_logger)
    claimed = assert_manifest_claims_only_verified_data(dst)
    assert claimed < 1001
    assert shardsync.sync(str(src), str(dst)).shards_copied == 1001 - claimed
