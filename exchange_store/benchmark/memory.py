"""Peak resident memory of this process, per phase where Linux allows it.

On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the RSS high-water mark
(``VmHWM``), so each benchmark run reports its own peak. Elsewhere the process-wide
``ru_maxrss`` is the best available (a run then reports the peak so far).
"""

from __future__ import annotations

import contextlib
import resource
import sys

__all__ = ["current_rss", "peak_rss", "reset_peak_rss"]


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the high-water mark; False where the platform cannot."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
        return True
    return False


def peak_rss() -> int:
    """Peak resident set size in bytes since the last reset (or process start)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


def current_rss() -> int:
    """Resident set size in bytes now."""
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else peak_rss()
