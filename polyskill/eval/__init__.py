"""Evaluation: protocols (which tasks, how each is scored, how the scores reduce), their typed results, and the
run summary that records them."""

from .episodes import accuracy, episode_scores, squared_errors
from .few_shot import FewShotAccuracy, FewShotResult, few_shot
from .full_test import FullTestAccuracy, FullTestResult
from .multitask import MultiTaskMetrics, MultiTaskResult, delta_m, evaluate_multitask
from .protocol import EpisodeProtocol, EvalProtocol
from .regression import RegressionMSE, RegressionResult, regression
from .result import RESULT_TYPES, Result, confidence_interval, result_from_dict
from .summary import RunSummary, ValidationRecord
from .task_data import EachTaskFit, TaskDataResult, adapt_each_task

__all__ = [
    "RESULT_TYPES",
    "EachTaskFit",
    "EpisodeProtocol",
    "EvalProtocol",
    "FewShotAccuracy",
    "FewShotResult",
    "FullTestAccuracy",
    "FullTestResult",
    "MultiTaskMetrics",
    "MultiTaskResult",
    "RegressionMSE",
    "RegressionResult",
    "Result",
    "RunSummary",
    "TaskDataResult",
    "ValidationRecord",
    "accuracy",
    "adapt_each_task",
    "confidence_interval",
    "delta_m",
    "episode_scores",
    "evaluate_multitask",
    "few_shot",
    "regression",
    "result_from_dict",
    "squared_errors",
]
