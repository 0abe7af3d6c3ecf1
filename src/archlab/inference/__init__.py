"""Using a trained model: load a run's model and fitted transforms, predict, generate, export.

Beside `archlab.tasks`: it may import data, models, checkpointing and config, never the
training loop (`archlab.run`, Lightning's Trainer) nor `archlab.cli`.
"""
