"""The one timing rule of the bench scripts: the median of `repeats` calls after one warm-up call; and the options
the throughput scripts share."""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def median_time(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput_args(doc: str, repeats: int, batches: int, argv: list[str] | None = None) -> tuple[argparse.Namespace, dict]:
    """--json, --threads, --repeats, --batches parsed (threads applied); and the result dict's first entries."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--repeats", type=int, default=repeats, help="timed repetitions per figure (median)")
    p.add_argument("--batches", type=int, default=batches, help="training batches per repetition")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, {"threads": torch.get_num_threads(), "torch": torch.__version__}
