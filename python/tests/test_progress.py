"""Progress: events reach the callback, on the calling thread, with the stage's totals."""

from __future__ import annotations

import sys
import threading
import types
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


def test_progress_true_draws_a_tqdm_bar_per_stage(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    bars = []

    class FakeTqdm:  # records what tqdm would be told
        def __init__(self, total: int, desc: str, **kwargs: object) -> None:
            self.total, self.desc, self.n, self.closed, self.postfix = total, desc, 0, False, ""
            bars.append(self)

        def update(self, n: int) -> None:
            self.n += n

        def set_postfix_str(self, s: str, refresh: bool = True) -> None:
            self.postfix = s

        def close(self) -> None:
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm.auto", types.SimpleNamespace(tqdm=FakeTqdm))
    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), progress=True)
    copying = [b for b in bars if b.desc == "copying"]
    assert len(copying) == 1
    bar = copying[0]
    assert (bar.total, bar.n) == (report.bytes_total, report.bytes_copied)
    assert bar.postfix == "12/12 objects" and bar.closed


def test_progress_true_without_tqdm_still_syncs(dataset: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails
    report = shardsync.sync(str(dataset), str(tmp_path / "dst"), progress=True)
    assert report.consistent
    assert "needs tqdm" in capsys.readouterr().err
