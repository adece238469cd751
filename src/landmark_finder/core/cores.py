"""How many cores this process may use: the affinity mask (a container's or ``taskset``'s
limit), not the machine's count. Describe workers, the web server's pool and the compressed
search's parallel scan all size themselves with it."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)
