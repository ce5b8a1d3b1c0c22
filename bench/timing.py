"""The one timing rule of the bench scripts: the median of `repeats` calls after one warm-up call."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
