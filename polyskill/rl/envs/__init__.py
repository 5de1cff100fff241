"""The reinforcement-learning task families by name (navigation2d, halfcheetah-vel, halfcheetah-dir); importing this
package needs neither gymnasium nor MuJoCo, building a family does."""

from polyskill.errors import ConfigError
from polyskill.rl.envs.base import Task, TaskFamily
from polyskill.rl.envs.halfcheetah import HalfCheetahDir, HalfCheetahVel
from polyskill.rl.envs.navigation import Navigation2D

ENVIRONMENTS: dict[str, type[TaskFamily]] = {f.name: f for f in (Navigation2D, HalfCheetahVel, HalfCheetahDir)}


def family(name: str, horizon: int | None = None) -> TaskFamily:
    """The task family called `name` with episodes of `horizon` steps (None: the family's default)."""
    if not isinstance(name, str) or name not in ENVIRONMENTS:
        raise ConfigError(f"env.name must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")
    return ENVIRONMENTS[name](horizon)


__all__ = ["ENVIRONMENTS", "HalfCheetahDir", "HalfCheetahVel", "Navigation2D", "Task", "TaskFamily", "family"]
