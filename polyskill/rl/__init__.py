"""Reinforcement learning: task families of environments, seeded rollouts, a Gaussian policy, the policy-gradient
estimators (returns, GAE, the linear feature baseline, surrogate losses, TRPO), and the learners that meta-learn a
policy to adapt to new tasks (MAML-RL, the pretrained baseline) or learn one policy for several tasks."""

from .envs import ENVIRONMENTS, Task, TaskFamily, family
from .episodes import Episodes
from .evaluation import AdaptationReturns, TaskReturns
from .learners import MAMLRL, RL_ALGORITHMS, MultiTaskPolicy, PolicyLearner, Pretrained
from .policy import GaussianPolicy
from .results import AdaptationResult, TaskReturnsResult
from .rollouts import Rollouts
from .trainer import RLTrainer
from .trpo import TRPOConfig, trpo_step

__all__ = [
    "ENVIRONMENTS",
    "MAMLRL",
    "RL_ALGORITHMS",
    "AdaptationResult",
    "AdaptationReturns",
    "Episodes",
    "GaussianPolicy",
    "MultiTaskPolicy",
    "PolicyLearner",
    "Pretrained",
    "RLTrainer",
    "Rollouts",
    "TRPOConfig",
    "Task",
    "TaskFamily",
    "TaskReturns",
    "TaskReturnsResult",
    "family",
    "trpo_step",
]
