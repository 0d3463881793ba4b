"""The Python layer's overhead on a no-op check: the CLI binary, a call from Python in a running
process, and a whole Python process (start, import, call), on the same local datasets (12 and
2000 objects of 1 KiB, already synced). Build both in release first:

    cargo build --release --bin shardsync && pip install ./python
    python python/benches/overhead.py target/release/shardsync
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import shardsync
CLI = sys.argv[1] if len(sys.argv) > 1 else "target/release/shardsync"
def median_ms(f, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), min(ts)
for count in (12, 2000):
    base = Path(tempfile.mkdtemp(prefix="ss-overhead-"))
    src = base / "src"; src.mkdir()
    for i in range(count):
        (src / f"part-{i:05d}.bin").write_bytes(os.urandom(1024))
    shardsync.sync(str(src), str(base / "dst"))
    assert shardsync.check(str(src), str(base / "dst")).consistent
    cli = lambda: subprocess.run([CLI, "check", str(src), str(base / "dst"), "--format", "json"], stdout=subprocess.DEVNULL, check=True)
    py = lambda: shardsync.check(str(src), str(base / "dst"))
    pycold = lambda: subprocess.run([sys.executable, "-c", f"import shardsync; assert shardsync.check({str(src)!r}, {str(base / 'dst')!r}).consistent"], check=True)
    for name, f, n in (("cli binary", cli, 30), ("python call (in-process)", py, 30), ("python process (import+call)", pycold, 15)):
        f()
        med, mn = median_ms(f, n)
        print(f"{count:5d} objects  {name:30s} median {med:7.2f} ms  min {mn:7.2f} ms")
