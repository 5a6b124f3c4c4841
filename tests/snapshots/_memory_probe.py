"""Run as a script: stream task state through a snapshot store and print peak RSS figures.

Usage: python _memory_probe.py ROOT SIZE_MB CODEC ENCRYPT(0|1)
Prints one JSON line: baseline and peak RSS (KiB), bytes written/read, seconds.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import sys
import time


def main() -> None:
    root, size_mb, codec, encrypt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
    from exchange_store.snapshots import SnapshotStore

    props = {
        "snapshot.base-directories": root,
        "snapshot.compression-codec": codec,
        "snapshot.encryption-enabled": str(encrypt).lower(),
    }
    store = SnapshotStore.from_properties(props, key=bytes(range(32)) if encrypt else None)
    chunk = random.Random(0).randbytes(1 << 20)  # 1 MiB, incompressible
    expected = hashlib.sha256()
    # Warm up (imports, thread pool, first allocations) before the baseline.
    warm = store.begin("warmup", ["t"])
    store.write_task_state(warm.task_handle("t"), chunk * 4)
    b"".join(store.read_task_state(warm.complete(), "t"))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    start = time.perf_counter()
    pending = store.begin("job", ["t"])
    with store.open_task_writer(pending.task_handle("t")) as writer:
        for i in range(size_mb):
            piece = i.to_bytes(8, "little") + chunk[8:]  # every MiB differs
            writer.write(piece)
            expected.update(piece)
    snap = pending.complete()
    written = time.perf_counter() - start
    peak_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    got = hashlib.sha256()
    total = 0
    start = time.perf_counter()
    for part in store.read_task_state(snap, "t"):
        got.update(part)
        total += len(part)
    read = time.perf_counter() - start
    peak_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.close()
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "peak_write_kib": peak_write,
                "peak_read_kib": peak_read,
                "bytes": total,
                "stored": snap.size,
                "ok": got.digest() == expected.digest(),
                "write_s": round(written, 2),
                "read_s": round(read, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
