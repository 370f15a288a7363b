"""Peak resident memory of the current process, for the benchmarks.

``getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong figure for a benchmark child:
Linux carries into it the resident size of the process that forked it (the
pre-exec copy), so a child of a large parent reports the parent's peak. The
kernel's ``VmHWM`` is the high-water mark of this process's own memory.
"""

import resource

__all__ = ["own_peak_rss_mb", "children_peak_rss_mb"]


def own_peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, in MB (Linux VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def children_peak_rss_mb() -> float:
    """Largest peak of the finished child processes, in MB: an upper bound (see module doc)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
