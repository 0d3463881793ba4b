"""Progress: events reach the callback, on the calling thread, with the stage's totals."""

from __future__ import annotations

import threading
from pathlib import Path

import shardsync


def test_progress_events_reach_the_callback_on_the_calling_thread(dataset: Path, tmp_path: Path) -> None:
    events = []
    threads = set()

    def on_event(event: shardsync.ProgressEvent) -> None:
        events.append(event)
        threads.add(threading.get_ident())

    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), progress=on_event)
    assert threads == {threading.get_ident()}
    copying = [e for e in events if e.stage == "copying"]
    assert copying[0].kind == "stage_started"
    assert copying[0].objects_total == 12 and copying[0].bytes_total == report.bytes_total
    done = [e.path for e in copying if e.kind == "object_done"]
    assert sorted(done) == sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file() and "_shardsync" not in p.parts)
    assert sum(e.bytes for e in copying if e.kind == "bytes") == report.bytes_copied
    last = copying[-1]
    assert last.kind == "stage_finished"
    assert (last.objects_done, last.bytes_done) == (12, report.bytes_copied)


def test_a_check_that_hashes_reports_the_hashing_stage(dataset: Path, tmp_path: Path) -> None:
    shardsync.sync(str(dataset), str(tmp_path / "dst"))
    stages = set()
    shardsync.check(str(dataset), str(tmp_path / "dst"), deep=True, progress=lambda e: stages.add(e.stage))
    assert "hashing" in stages


def test_progress_true_without_tqdm_still_syncs(dataset: Path, tmp_path: Path) -> None:
    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), progress=True)
    assert report.consistent
