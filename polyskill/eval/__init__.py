"""Evaluation protocols."""

from .few_shot import FewShotResult, confidence_interval, few_shot
from .regression import RegressionResult, regression
from .task_data import TaskDataResult, adapt_each_task

__all__ = ["FewShotResult", "RegressionResult", "TaskDataResult", "adapt_each_task", "confidence_interval", "few_shot",
           "regression"]
