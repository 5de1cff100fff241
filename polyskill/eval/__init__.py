"""Evaluation protocols."""

from .few_shot import FewShotResult, confidence_interval, few_shot

__all__ = ["FewShotResult", "confidence_interval", "few_shot"]
