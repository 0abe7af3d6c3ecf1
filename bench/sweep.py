"""A 4-job grid sweep's wall time: Hydra's basic launcher (jobs one after the other, in one
process) against the joblib launcher (2 jobs at once in worker processes, torch threads
shared out between them).

The sweep is `model=cnn,rnn data=image,sequence` with the default budget (20 epochs), run by
the real entry point (`python -m archlab.train -m ...`) in a fresh directory each time, so no
job is skipped as finished. The basic launcher imports the libraries once for all jobs; each
joblib worker pays that import (~4 s) again, which the parallelism must win back. Where other
programs share the cores, the figures move; run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from archlab.sweeps.threads import available_cores

GRID = ("model=cnn,rnn", "data=image,sequence")
QUIET = ("trainer.enable_progress_bar=false", "trainer.enable_model_summary=false")
LAUNCHERS = {
    "basic": (),
    "joblib (n_jobs=2)": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
}
REPEATS = 2


def sweep_seconds(launcher_overrides: tuple[str, ...]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "archlab.train", "-m", *GRID, *QUIET, *launcher_overrides],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"},
        )
        return time.perf_counter() - start


def main() -> None:
    print(f"4-job grid ({' '.join(GRID)}), {available_cores()} cores, best of {REPEATS}:")
    times = {}
    for name, overrides in LAUNCHERS.items():
        times[name] = min(sweep_seconds(overrides) for _ in range(REPEATS))
        print(f"  {name:<18} {times[name]:6.1f} s", flush=True)
    basic, parallel = times.values()
    print(f"  joblib / basic     {parallel / basic:6.2f}x  (below 1: parallel jobs finish sooner)")


if __name__ == "__main__":
    main()
