"""Checkpoint files: finding and loading them safely, writing them atomically, `last.ckpt` on
signals and every n steps, the RNG states they carry, and resuming an interrupted run."""
