"""CPU threads per job: parallel sweep jobs on one machine share its cores instead of each
starting a thread per core (oversubscribed, two jobs run slower than one after the other)."""

from __future__ import annotations

import os

import torch


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallel_workers(n_jobs: int | None) -> int:
    """How many jobs a launcher with joblib's `n_jobs` semantics runs at once (-1: all cores)."""
    cores = available_cores()
    if n_jobs is None or n_jobs == 0:
        return 1
    return max(1, cores + 1 + n_jobs) if n_jobs < 0 else n_jobs


def set_threads(num_threads: int | None, workers: int = 1) -> int:
    """Use `num_threads` torch threads, or (None) this machine's cores divided by `workers`."""
    threads = num_threads or max(1, available_cores() // workers)
    torch.set_num_threads(threads)
    return threads
