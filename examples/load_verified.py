"""Load a dataset with pyarrow only after shardsync has proven it is the source's.

    python examples/load_verified.py SRC DST     # local folders (or URLs pyarrow can read)
    python examples/load_verified.py --demo      # writes a small Parquet dataset, syncs it

The order is the point: sync, ``require_consistent``, and only then read. A loader that globs a
half-synced folder would silently train on part of the data (or on a stray file).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import List, Optional

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import shardsync


def load_verified(src: str, dst: str) -> pa.Table:
    """Sync ``src`` to the local folder ``dst``, prove it, and read its Parquet shards."""
    shardsync.sync(src, dst, delete=True)
    report = shardsync.require_consistent(src, dst)
    manifest = shardsync.Manifest.load(dst)
    assert manifest.digest == report.src_digest
    shards = [str(Path(dst) / e.path) for e in manifest if e.is_parquet]
    table = ds.dataset(shards, format="parquet").to_table()
    if table.num_rows != manifest.totals["rows"]:
        raise RuntimeError(f"read {table.num_rows} rows, the manifest says {manifest.totals['rows']}")
    print(f"loaded {table.num_rows} rows from {len(shards)} shards, dataset {manifest.digest[:16]}")
    return table


def _demo() -> List[str]:
    base = Path(tempfile.mkdtemp(prefix="shardsync-load-"))
    src = base / "region-a"
    src.mkdir()
    for n in range(4):
        ids = [[n * 1000 + i, i] for i in range(250)]
        pq.write_table(pa.table({"input_ids": ids, "label": list(range(250))}), src / f"train-{n}.parquet")
    (src / "tokenizer.json").write_text('{"vocab": 32000}')
    return [str(src), str(base / "region-b")]


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--demo"]:
        argv = _demo()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        load_verified(argv[0], argv[1])
    except shardsync.Error as e:
        print(f"not loading: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
