"""The manifest API: build, load, entries, totals, digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import shardsync
from conftest import sha256_of


def write_parquet(root: Path) -> int:
    """Three Parquet shards (rows 100, 200, 300) and a tokenizer sidecar; the total rows."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    root.mkdir(parents=True)
    for n, rows in enumerate([100, 200, 300]):
        table = pa.table({"input_ids": [[i, i + 1] for i in range(rows)], "label": list(range(rows))})
        pq.write_table(table, root / f"train-{n}.parquet", row_group_size=50)
    (root / "tokenizer.json").write_text('{"vocab": 32000}')
    return 600


def test_build_records_every_object_and_the_parquet_facts(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    rows = write_parquet(root)
    manifest = shardsync.Manifest.build(str(root))
    assert manifest.totals == {"shards": 3, "files": 4, "bytes": manifest.totals["bytes"], "rows": rows}
    assert manifest.totals["bytes"] == sum(p.stat().st_size for p in root.iterdir() if p.is_file())
    entries = list(manifest)
    assert [e.path for e in entries] == ["tokenizer.json", "train-0.parquet", "train-1.parquet", "train-2.parquet"]
    assert len(manifest) == 4
    for e in entries:
        assert e.sha256 == sha256_of(root / e.path) and e.size == (root / e.path).stat().st_size
    shard = manifest.get("train-1.parquet")
    assert shard is not None and shard.is_parquet
    assert (shard.rows, shard.row_groups) == (200, 4)
    assert shard.schema is not None and shard.schema.startswith("sha256:")
    assert len({e.schema for e in entries if e.is_parquet}) == 1
    sidecar = manifest.get("tokenizer.json")
    assert sidecar is not None and sidecar.rows is None and not sidecar.is_parquet
    assert manifest.get("nope") is None

    as_dict = manifest.to_dict()
    assert as_dict == json.loads(manifest.to_json())
    assert as_dict["digest"] == manifest.digest
    assert [s["path"] for s in as_dict["shards"]] == [e.path for e in entries]
    assert entries[1].to_dict()["rows"] == 100


def test_the_built_manifest_is_the_one_loaded_and_the_one_check_names(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_parquet(root)
    built = shardsync.Manifest.build(str(root))
    assert (root / "_shardsync" / "manifest.json").exists()
    loaded = shardsync.Manifest.load(str(root))
    assert loaded.digest == built.digest
    report = shardsync.sync(str(root), str(tmp_path / "copy"))
    assert report.src_digest == report.dst_digest == built.digest
    assert shardsync.Manifest.load(str(tmp_path / "copy")).digest == built.digest
    assert shardsync.verify(str(tmp_path / "copy"), deep=True).consistent


def test_a_changed_shard_changes_the_digest(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_parquet(root)
    before = shardsync.Manifest.build(str(root)).digest
    (root / "tokenizer.json").write_text('{"vocab": 32001}')
    after = shardsync.Manifest.build(str(root))
    assert after.digest != before
    assert after.get("tokenizer.json").sha256 == sha256_of(root / "tokenizer.json")
