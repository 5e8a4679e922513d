"""The peak resident memory of this process alone.

``ru_maxrss`` is kept across ``exec`` on Linux: a child started by a benchmark that had just
built a 2 GB phantom reports at least the parent's resident size at the fork, whatever the
child used. ``VmHWM`` (/proc/self/status) belongs to the process's own address space, so
each benchmark child reports what its own work needed.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM; ru_maxrss where /proc is absent)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
