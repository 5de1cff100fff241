"""Training loops, checkpoints and run logs."""

from .checkpoint import load_checkpoint, read_json, save_checkpoint, write_json
from .episodic import FitConfig, Trainer, fit
from .metrics import MetricsLog, read_metrics

__all__ = [
    "FitConfig",
    "MetricsLog",
    "Trainer",
    "fit",
    "load_checkpoint",
    "read_json",
    "read_metrics",
    "save_checkpoint",
    "write_json",
]
