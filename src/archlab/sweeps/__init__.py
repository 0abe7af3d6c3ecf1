"""Multirun jobs: the Optuna study and pruning, failures kept per job, cores shared by jobs."""
