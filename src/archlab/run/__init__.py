"""One run's lifecycle: stages, the job (here or in launched ranks), the Lightning Trainer,
the fit itself and its capacity plan."""
