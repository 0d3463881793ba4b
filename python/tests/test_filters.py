"""Filters, limits and cost from Python: the same view, limits and estimate as the CLI's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shardsync


def test_a_filtered_sync_copies_its_view_records_it_and_check_compares_like_with_like(
    dataset: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    (dst / "mine").mkdir(parents=True)
    (dst / "mine" / "notes.txt").write_bytes(b"not the dataset's")
    report = shardsync.sync(str(dataset), str(dst), include="*.bin", exclude=["part-0000[0-4].bin"], delete=True)
    assert report.consistent
    assert report.shards_copied == 6  # part-00005 .. part-00010
    assert report.to_dict()["filter"] == {"include": ["*.bin"], "exclude": ["part-0000[0-4].bin"]}
    assert (dst / "mine" / "notes.txt").exists(), "outside the view: --delete leaves it"
    assert not (dst / "meta" / "index.json").exists()
    manifest = json.loads((dst / "_shardsync" / "manifest.json").read_text())
    assert manifest["filter"]["include"] == ["*.bin"]

    same = shardsync.check(str(dataset), str(dst), include="*.bin", exclude=["part-0000[0-4].bin"])
    assert same.consistent and not same.warnings
    whole = shardsync.check(str(dataset), str(dst))
    assert not whole.consistent
    assert any("filtered by --include '*.bin'" in w for w in whole.warnings)


def test_limits_and_the_cost_estimate(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    # min_size leaves out the small sidecar: eleven shards of 4096 bytes are to move.
    plan = shardsync.diff(str(dataset), str(dst), egress_price=0.09, min_size=100).to_dict()
    assert plan["bytes_to_transfer"] == 11 * 4096
    assert plan["estimated_cost_usd"] == pytest.approx(11 * 4096 / 2**30 * 0.09)

    # Copies start while those started hold less than max_transfer: 0, 4096 and 8192 bytes.
    with pytest.raises(shardsync.IncompleteError) as caught:
        shardsync.sync(str(dataset), str(dst), include="*.bin", max_transfer=3 * 4096, bwlimit=1 << 20)
    report = caught.value.report
    assert report.max_transfer_reached
    assert report.shards_copied == 3
    assert report.bytes_to_transfer == 11 * 4096
    with pytest.raises(shardsync.ConfigError):
        shardsync.sync(str(dataset), str(dst), include="part-[")
