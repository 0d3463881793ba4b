"""The Python layer's overhead on a no-op check: the CLI binary, a call from Python in a running
process, and a whole Python process (start, import, call), on the same local datasets (12 and
2000 objects of 1 KiB, already synced). Build both in release first:

    cargo build --release --bin shardsync && pip install ./python
    python python/benches/overhead.py target/release/shardsync
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Tuple

import shardsync


def timed(run: Callable[[], object], times: int) -> Tuple[float, float]:
    """Median and fastest of ``times`` runs after one warm-up, in milliseconds."""
    run()
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), min(samples)


def synced_pair(objects: int) -> Tuple[str, str]:
    """A source of ``objects`` 1 KiB files and its synced copy."""
    base = Path(tempfile.mkdtemp(prefix="shardsync-overhead-"))
    src = base / "src"
    src.mkdir()
    for i in range(objects):
        (src / f"part-{i:05d}.bin").write_bytes(os.urandom(1024))
    shardsync.sync(str(src), str(base / "dst"))
    return str(src), str(base / "dst")


def main() -> None:
    cli = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardsync"
    for objects in (12, 2000):
        src, dst = synced_pair(objects)
        assert shardsync.check(src, dst).consistent
        script = f"import shardsync; assert shardsync.check({src!r}, {dst!r}).consistent"
        runs = {
            "cli binary": (lambda: subprocess.run([cli, "check", src, dst, "--format", "json"],
                                                  stdout=subprocess.DEVNULL, check=True), 30),
            "python call (in-process)": (lambda: shardsync.check(src, dst), 30),
            "python process (import+call)": (lambda: subprocess.run([sys.executable, "-c", script],
                                                                    check=True), 15),
        }
        for name, (run, times) in runs.items():
            median, fastest = timed(run, times)
            print(f"{objects:5d} objects  {name:30s} median {median:7.2f} ms  min {fastest:7.2f} ms")


if __name__ == "__main__":
    main()
