"""Batch normalisation with statistics over the whole global batch, on any device and backend (torch's
SyncBatchNorm runs on GPUs only): what keeps a meta-batch split over ranks equal to the same batch in one
process for learners that embed every task of a batch in one pass (ProtoNet, Matching, MetaOptNet, ...)."""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks, differentiably: the gradient of every rank's input is the sum of all ranks'
    output gradients (each rank's loss depends on every rank's statistics)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        return _sum_over_ranks(tensor.clone())

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _sum_over_ranks(grad.contiguous().clone())


def _sum_over_ranks(tensor: Tensor) -> Tensor:
    """In place: the sum over the ranks (nothing to do in a single process)."""
    if torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
        torch_dist.all_reduce(tensor)
    return tensor


class SyncedBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are summed over the ranks (a differentiable all-reduce, so the
    backward pass is exact too), computed in two passes (mean, then centred squares): torch's CPU kernel on
    channels-last inputs is off by ~1e-3 from a float64 computation on Omniglot features, this by ~1e-6.
    Eval mode is plain BatchNorm (running statistics)."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        channels = x.shape[1]
        count = torch.tensor([x.numel() / channels], dtype=x.dtype, device=x.device)
        total = _AllReduceSum.apply(torch.cat([x.sum(dims), count]))
        n = total[-1]
        mean = total[:channels] / n
        shape = [1, channels] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        # a second reduction for the variance: E[x^2] - E[x]^2 loses the small variances of channels whose
        # mean is large, and the normalisation then amplifies the error
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n
        running_mean, running_var, batches = self.running_mean, self.running_var, self.num_batches_tracked
        if self.track_running_stats and running_mean is not None and running_var is not None and batches is not None:
            with torch.no_grad():
                batches.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(batches)
                running_mean.lerp_(mean.detach(), momentum)
                running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batch_norms(module: nn.Module) -> int:
    """Swap every BatchNorm inside `module` for a SyncedBatchNorm holding the same parameters and buffers;
    the number swapped. State dicts keep their keys, so checkpoints load either way."""
    swapped = 0
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, SyncedBatchNorm):
            synced = SyncedBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            state = child.state_dict()
            synced.load_state_dict(state)
            if state:
                synced.to(next(iter(state.values())).device)
            synced.train(child.training)
            setattr(module, name, synced)
            swapped += 1
        else:
            swapped += sync_batch_norms(child)
    return swapped
