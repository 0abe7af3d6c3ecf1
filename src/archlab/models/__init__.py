"""Plain PyTorch models: no Lightning or Hydra in here."""

from archlab.models.build import build_classifier
from archlab.models.network import Network
from archlab.models.spec import ImageSpec, InputSpec, SequenceSpec, TextSpec

__all__ = ["ImageSpec", "InputSpec", "Network", "SequenceSpec", "TextSpec", "build_classifier"]
