"""Reinforcement-learning learners, one module each; a recipe's `algo.name` picks one."""

from __future__ import annotations

from .base import PolicyLearner
from .maml import MAMLRL, Pretrained
from .multitask import MultiTaskPolicy

RL_ALGORITHMS: dict[str, type[PolicyLearner]] = {
    "maml": MAMLRL,
    "pretrained": Pretrained,
    "multitask": MultiTaskPolicy,
}

__all__ = ["MAMLRL", "RL_ALGORITHMS", "MultiTaskPolicy", "PolicyLearner", "Pretrained"]
