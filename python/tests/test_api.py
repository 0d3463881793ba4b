"""The package as a user meets it: documented, typed, importable names."""

from __future__ import annotations

import inspect
from pathlib import Path

import shardsync


def test_every_public_name_is_documented() -> None:
    for name in shardsync.__all__:
        obj = getattr(shardsync, name)
        assert inspect.getdoc(obj), f"shardsync.{name} has no docstring"
    for cls in (shardsync.Report, shardsync.Manifest, shardsync.ShardEntry, shardsync.Finding):
        for attr, member in vars(cls).items():
            if not attr.startswith("_"):
                assert inspect.getdoc(member), f"{cls.__name__}.{attr} has no docstring"


def test_help_of_sync_states_its_arguments_and_what_it_raises() -> None:
    doc = inspect.getdoc(shardsync.sync) or ""
    signature = inspect.signature(shardsync.sync)
    for arg in ("full", "delete", "dry_run", "jobs", "verify", "src_options", "dst_options", "progress"):
        assert arg in signature.parameters and arg in doc
    assert "IncompleteError" in doc and "Interrupted" in doc


def test_the_package_ships_its_type_information() -> None:
    package = Path(shardsync.__file__).parent
    assert (package / "py.typed").exists()
    assert (package / "_native.pyi").exists()
