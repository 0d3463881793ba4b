"""Preflight: prove the dataset a training job reads is the source's, log its digest, then train.

Three ways to use it:

* In a training script, one line before ``trainer.fit()``::

      from preflight import preflight
      digest = preflight("s3://east/tokenized/v7", "s3://west/tokenized/v7")

* As a wrapper around the launcher: check, then hand over to the command after ``--``, with
  the digest in ``SHARDSYNC_DATASET_DIGEST`` for the training code to log::

      python examples/preflight.py s3://east/tokenized/v7 s3://west/tokenized/v7 \\
          -- torchrun --nproc-per-node 8 train.py

  Under torchrun itself (``torchrun ... preflight.py SRC DST -- python train.py``) only the
  first process of each node checks; the others wait for its verdict in a marker file.

* ``python examples/preflight.py --demo`` runs the whole thing on two temporary folders.

Exit codes are the CLI's: 1 when the destination drifted, 2 on an error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import shardsync

log = logging.getLogger("preflight")


def preflight(src: str, dst: str, *, deep: bool = False) -> str:
    """Raise ``shardsync.DriftError`` unless ``dst`` holds exactly ``src``'s dataset; return
    and log the dataset's digest (the version this training run reads)."""
    report = shardsync.require_consistent(src, dst, deep=deep)
    digest = report.src_digest or ""
    log.info("dataset %s verified at %s: digest %s", report.src, report.dst, digest)
    return digest


def _verdict_file(dst: str) -> Path:
    """Where the first process of a node leaves its verdict for the node's others: named by the
    torchrun agent (every local worker's parent) and the destination."""
    key = hashlib.sha256(dst.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"shardsync-preflight-{os.getppid()}-{key}"


def _node_preflight(src: str, dst: str, deep: bool) -> str:
    """Under torchrun: LOCAL_RANK 0 checks and leaves ``ok DIGEST`` or ``fail CODE``; the
    node's other processes wait for it and share its verdict."""
    marker = _verdict_file(dst)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        verdict = "fail 2"
        try:
            digest = preflight(src, dst, deep=deep)
            verdict = f"ok {digest}"
            return digest
        except shardsync.DriftError:
            verdict = "fail 1"
            raise
        finally:
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(verdict)
            tmp.replace(marker)
    while not marker.exists():
        time.sleep(0.5)
    status, value = marker.read_text().split(" ", 1)
    if status != "ok":
        raise SystemExit(int(value))
    return value


def _demo() -> List[str]:
    """Two folders, the second synced from the first: the arguments of a run."""
    base = Path(tempfile.mkdtemp(prefix="shardsync-preflight-"))
    src = base / "region-a"
    src.mkdir()
    for n in range(8):
        (src / f"shard-{n:03d}.bin").write_bytes(os.urandom(64 * 1024))
    (src / "dataset_info.json").write_text('{"name": "demo"}')
    shardsync.sync(str(src), str(base / "region-b"))
    train = "import os; print('training on dataset', os.environ['SHARDSYNC_DATASET_DIGEST'][:16])"
    return [str(src), str(base / "region-b"), "--", sys.executable, "-c", train]


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: List[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1 :]
    if argv == ["--demo"]:
        return main(_demo())
    parser = argparse.ArgumentParser(description="Check a dataset before training, then train.")
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--deep", action="store_true", help="re-hash every byte on both sides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if "LOCAL_RANK" in os.environ:
            digest = _node_preflight(args.src, args.dst, args.deep)
        else:
            digest = preflight(args.src, args.dst, deep=args.deep)
    except shardsync.DriftError as e:
        log.error("not training: %s\n%s", e, e.report.to_text() if e.report else "")
        return e.exit_code
    except shardsync.Error as e:
        log.error("not training: %s", e)
        return e.exit_code
    except shardsync.Interrupted:
        return 130
    if command:
        os.environ["SHARDSYNC_DATASET_DIGEST"] = digest
        sys.stdout.flush()
        os.execvp(command[0], command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
