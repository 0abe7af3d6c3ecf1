"""Several processes for one job: strategies, torchrun-launched ranks, SLURM job shapes."""
