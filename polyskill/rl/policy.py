"""The diagonal Gaussian policy of MAML for reinforcement learning: an MLP mean and a learned, state-independent
standard deviation, callable with MAML's adapted parameters through torch.func.functional_call."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Normal
from torch.func import functional_call

from polyskill.errors import ConfigError


class GaussianPolicy(nn.Module):
    """A diagonal Gaussian policy: an MLP (tanh hidden layers `widths`, linear output) gives the mean; a
    state-independent learned log standard deviation per action dim (starting at log(init_std))."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        widths: Sequence[int] = (100, 100),
        init_std: float = 1.0,
        min_std: float = 1e-6,
    ) -> None:
        super().__init__()
        if obs_dim < 1 or act_dim < 1:
            raise ConfigError(f"a Gaussian policy needs positive observation and action dims, got {obs_dim}, {act_dim}")
        if any(w < 1 for w in widths):
            raise ConfigError(f"a Gaussian policy's hidden widths must be positive, got {list(widths)}")
        if not (math.isfinite(init_std) and init_std > 0):
            raise ConfigError(f"a Gaussian policy's init_std must be positive, got {init_std}")
        if not (math.isfinite(min_std) and 0 <= min_std <= init_std):
            raise ConfigError(f"a Gaussian policy's min_std must be in [0, init_std], got {min_std}")
        dims = [obs_dim, *widths, act_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            linear = nn.Linear(a, b)
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            layers.append(linear)
            if i < len(dims) - 2:
                layers.append(nn.Tanh())
        self.mean_net = nn.Sequential(*layers)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.obs_dim, self.act_dim, self.min_std = obs_dim, act_dim, min_std

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """The mean [..., A] and the standard deviation [A] at `obs` [..., O]."""
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"policy: observations of dim {obs.shape[-1]}, expected {self.obs_dim}")
        return self.mean_net(obs), self.log_std.exp().clamp(min=self.min_std)

    def distribution(self, obs: Tensor, params: Mapping[str, Tensor] | None = None) -> Normal:
        """The elementwise Normal over actions at `obs`; with `params` (every parameter by name) it is a function of
        those tensors, so MAML's outer gradient flows through its adapted parameters."""
        if params is None:
            mean, std = self(obs)
        else:
            mean, std = functional_call(self, dict(params), (obs,), strict=True)
        return Normal(mean, std, validate_args=False)

    def stacked_distribution(self, obs: Tensor, params: Mapping[str, Tensor]) -> Normal:
        """The distributions of T policies at once: `params` holds every parameter with a leading task axis
        [T, ...] (MAML's adapted parameters of a meta-batch) and `obs` [T, ..., O] each task's observations. One
        batched matrix product per layer instead of one network call per task."""
        tasks = obs.shape[0]
        x = obs.reshape(tasks, -1, obs.shape[-1])
        linears = [name for name, module in self.mean_net.named_children() if isinstance(module, nn.Linear)]
        for j, name in enumerate(linears):
            weight, bias = params[f"mean_net.{name}.weight"], params[f"mean_net.{name}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if j < len(linears) - 1:
                x = torch.tanh(x)
        mean = x.reshape(*obs.shape[:-1], x.shape[-1])
        std = params["log_std"].exp().clamp(min=self.min_std)
        std = std.reshape(tasks, *([1] * (obs.dim() - 2)), -1).expand_as(mean)
        return Normal(mean, std, validate_args=False)

    def log_prob(self, obs: Tensor, actions: Tensor, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """The log density of `actions` [..., A] at `obs` [..., O], summed over the action dim: [...]."""
        return self.distribution(obs, params).log_prob(actions).sum(-1)

    def sample(
        self, obs: Tensor, generator: torch.Generator | None = None, params: Mapping[str, Tensor] | None = None
    ) -> Tensor:
        """An action per observation, mean + std * randn (reproducible given the generator); no gradient flows."""
        with torch.no_grad():
            d = self.distribution(obs, params)
            noise = torch.randn(d.loc.shape, generator=generator, dtype=d.loc.dtype, device=d.loc.device)
            return d.loc + d.scale * noise

    def mean_action(self, obs: Tensor, params: Mapping[str, Tensor] | None = None) -> Tensor:
        """The deterministic action (the mean) at `obs`, for evaluation; no gradient flows."""
        with torch.no_grad():
            return self.distribution(obs, params).loc
