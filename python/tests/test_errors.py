"""Errors: a class per situation, messages that name the object and the cause, no secrets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import shardsync
from conftest import ACCESS_KEY, SECRET_KEY


def test_a_bad_url_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(shardsync.ConfigError) as caught:
        shardsync.sync("ftp://host/data", str(tmp_path / "dst"))
    err = caught.value
    assert isinstance(err, shardsync.Error) and isinstance(err, ValueError)
    assert err.exit_code == 2 and err.report is None
    assert "ftp://host/data" in str(err) and "unsupported scheme" in str(err)


def test_a_missing_source_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(shardsync.Error) as caught:
        shardsync.check(str(missing), str(tmp_path / "dst"))
    assert str(missing) in str(caught.value)


def test_an_empty_source_is_refused_with_the_argument_that_allows_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(shardsync.RefusedError) as caught:
        shardsync.sync(str(tmp_path / "empty"), str(tmp_path / "dst"))
    assert "allow_empty_source=True" in str(caught.value)
    report = shardsync.sync(str(tmp_path / "empty"), str(tmp_path / "dst"), allow_empty_source=True)
    assert report.shards_total == 0


def test_deleting_most_of_the_destination_needs_max_delete(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shardsync.sync(str(dataset), str(dst))
    for n in range(20):
        (dst / f"old-{n}.bin").write_bytes(b"old")
    with pytest.raises(shardsync.RefusedError) as caught:
        shardsync.sync(str(dataset), str(dst), delete=True)
    assert "max_delete" in str(caught.value)
    assert (dst / "old-0.bin").exists()
    report = shardsync.sync(str(dataset), str(dst), delete=True, max_delete="100%")
    assert report.shards_deleted == 20 and report.consistent


def test_verify_without_a_manifest_is_a_manifest_error(dataset: Path) -> None:
    with pytest.raises(shardsync.ManifestError) as caught:
        shardsync.verify(str(dataset))
    assert "manifest" in str(caught.value)
    with pytest.raises(shardsync.ManifestError):
        shardsync.Manifest.load(str(dataset))


def test_an_unknown_store_option_is_named_but_its_value_is_not_shown() -> None:
    with pytest.raises(shardsync.ConfigError) as caught:
        shardsync.verify("s3://bucket/data", options={"secret_acces_key": SECRET_KEY})
    err = caught.value
    assert "secret_acces_key" in str(err)
    assert SECRET_KEY not in str(err) and SECRET_KEY not in repr(err)


def test_an_unreachable_store_is_a_store_error_without_the_credentials(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    options = {
        "endpoint": f"http://127.0.0.1:{port}",
        "allow_http": True,
        "region": "us-east-1",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    with pytest.raises(shardsync.StoreError) as caught:
        shardsync.check("s3://bucket/data", str(tmp_path), src_options=options)
    err = caught.value
    for text in (str(err), repr(err), repr(err.args)):
        assert SECRET_KEY not in text and ACCESS_KEY not in text
    assert "Connection refused" in str(err) or "connect" in str(err).lower()


def test_a_bad_verify_mode_is_a_config_error(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(shardsync.ConfigError, match="verify"):
        shardsync.sync(str(dataset), str(tmp_path / "dst"), verify="sometimes")


def test_a_failed_shard_is_an_incomplete_error_naming_it_with_the_report(dataset: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    (dst / "part-00004.bin").mkdir(parents=True)  # a folder where the shard must land
    (dst / "part-00004.bin" / "inner").write_bytes(b"x")
    with pytest.raises(shardsync.IncompleteError) as caught:
        shardsync.sync(str(dataset), str(dst))
    err = caught.value
    assert isinstance(err, shardsync.ShardError) and err.exit_code == 2
    assert "part-00004.bin" in str(err) and "Is a directory" in str(err)
    assert err.report is not None and err.report.shards_failed == 1
    assert [f.path for f in err.report.findings if f.kind == "error"] == ["part-00004.bin"]
    manifest = shardsync.Manifest.load(str(dst))
    assert manifest.get("part-00004.bin") is None and len(manifest) == 11
