"""Hyperparameter sweeps with Optuna: `polyskill sweep RECIPE --param KEY=SPEC ...`, each trial a run directory."""

from .space import Param, Space, parse_param, parse_space
from .study import run_sweep

__all__ = ["Param", "Space", "parse_param", "parse_space", "run_sweep"]
