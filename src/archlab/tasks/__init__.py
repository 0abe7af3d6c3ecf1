"""Lightning modules: objectives, metrics, optimizers and schedules."""
