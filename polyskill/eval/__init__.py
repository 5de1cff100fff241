"""Evaluation protocols."""

from .few_shot import FewShotResult, confidence_interval, few_shot
from .regression import RegressionResult, regression

__all__ = ["FewShotResult", "RegressionResult", "confidence_interval", "few_shot", "regression"]
