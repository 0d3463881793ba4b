"""Against a real S3 server (moto's): sync there and back, drift, errors, no secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import pytest

import shardsync
from conftest import ACCESS_KEY, SECRET_KEY, sha256_of


def test_sync_to_s3_is_incremental_and_comes_back_identical(
    dataset: Path, tmp_path: Path, bucket: str, s3_options: Dict[str, object]
) -> None:
    url = f"s3://{bucket}/tokenized/v7"
    first = shardsync.sync(str(dataset), url, dst_options=s3_options)
    assert first.consistent and first.shards_copied == 12
    again = shardsync.sync(str(dataset), url, dst_options=s3_options)
    assert (again.shards_copied, again.shards_skipped) == (0, 12)

    assert shardsync.verify(url, options=s3_options, deep=True).consistent
    manifest = shardsync.Manifest.load(url, options=s3_options)
    assert manifest.digest == first.src_digest and len(manifest) == 12

    back = tmp_path / "back"
    shardsync.sync(url, str(back), src_options=s3_options)
    for entry in manifest:
        assert sha256_of(back / entry.path) == entry.sha256
    report = shardsync.require_consistent(url, str(back), src_options=s3_options, deep=True)
    assert report.src_digest == manifest.digest
    for text in (repr(report), report.to_json(), report.to_markdown(), str(report)):
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_drift_on_s3_raises_drift_error(dataset: Path, bucket: str, s3_options: Dict[str, object]) -> None:
    url = f"s3://{bucket}/data"
    shardsync.sync(str(dataset), url, dst_options=s3_options)
    (dataset / "part-00002.bin").write_bytes(b"a newer version")
    with pytest.raises(shardsync.DriftError) as caught:
        shardsync.require_consistent(str(dataset), url, dst_options=s3_options)
    assert "part-00002.bin" in str(caught.value)
    assert [f.path for f in caught.value.report.findings] == ["part-00002.bin"]


def test_a_missing_bucket_is_a_store_error_naming_it_without_secrets(
    dataset: Path, s3_options: Dict[str, object]
) -> None:
    with pytest.raises(shardsync.StoreError) as caught:
        shardsync.check(str(dataset), "s3://no-such-bucket-here/data", dst_options=s3_options)
    err = caught.value
    assert err.exit_code == 2
    assert "no-such-bucket-here" in str(err) or "NoSuchBucket" in str(err)
    for text in (str(err), repr(err)):
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_a_large_object_goes_multipart_and_arrives_whole(
    tmp_path: Path, bucket: str, s3_options: Dict[str, object]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(11 * shardsync.MiB + 17))
    url = f"s3://{bucket}/big"
    report = shardsync.sync(
        str(src), url, dst_options=s3_options, multipart_threshold=shardsync.MiB, part_size=5 * shardsync.MiB
    )
    assert report.consistent and report.bytes_copied == 11 * shardsync.MiB + 17
    back = tmp_path / "back"
    shardsync.sync(url, str(back), src_options=s3_options, verify="deep")
    assert sha256_of(back / "big.bin") == sha256_of(src / "big.bin")
