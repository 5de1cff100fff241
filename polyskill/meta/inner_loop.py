"""The inner loop of gradient-based meta-learning: gradient steps on a task's support loss, written as pure
functions of parameter dicts (`torch.func`), for a whole meta-batch of tasks at once.

MAML, FOMAML, ANIL, Meta-SGD, MAML++ and Reptile are options of this one engine:

- `first_order`: inner gradients are computed without a graph (FOMAML, Reptile) or with one, so that the
  outer gradient flows through them (second-order MAML);
- `adapt`: which parameters the inner loop changes (all of them, or the head only for ANIL); the others stay
  shared by every task;
- `learn_lr`: fixed rates, a learned rate per parameter element (Meta-SGD) or a learned rate per step and per
  parameter tensor (MAML++'s LSLR);
- `optimizer`: plain gradient descent, or Adam with its state reset for each task (Reptile's inner loop).

Tasks run in parallel through `vmap`. While every task still has the same parameters (before the first
inner step, and always for the parameters that do not adapt) those parameters are passed unbatched, so the
network runs as one large batch with per-task batch-norm statistics instead of a grouped convolution per task.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .batch_statistics import streamed_statistics

Params = dict[str, Tensor]
"""Parameter name -> tensor; in a meta-batch, adapted tensors carry a leading task axis [B, ...]."""

LEARN_LR = ("none", "per_parameter", "per_step")
OPTIMIZERS = ("sgd", "adam")
VECTORIZE = ("auto", "vmap", "loop")


_VMAPPED = contextvars.ContextVar("polyskill_vmapped", default=False)


@contextlib.contextmanager
def _vmapped() -> Iterator[None]:
    """Marks code that runs under `vmap`, where TaskBatchNorm must use elementary ops."""
    token = _VMAPPED.set(True)
    try:
        yield
    finally:
        _VMAPPED.reset(token)


#: a network with dropout (a text CNN) draws its own masks for every task of a vmapped meta-batch
RANDOMNESS = "different"


def task_loss(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy for integer class labels, mean squared error for float targets (regression tasks).

    Half-precision outputs (autocast) are lifted to float32; float64 stays float64.
    """
    if output.dtype in (torch.float16, torch.bfloat16):
        output = output.float()
    if target.is_floating_point():
        return F.mse_loss(output.reshape(target.shape), target.to(output.dtype))
    return F.cross_entropy(output, target)


class TaskBatchNorm(nn.Module):
    """Batch norm with the statistics of the batch in front of it, always, and no running statistics.

    Under the engine's `vmap` it is written with elementary tensor ops: there PyTorch's fused batch norm
    gives a wrong second derivative (tested against finite differences in the suite). Elsewhere it runs
    the fused kernel, which is several times faster. Inside `transduce_in_chunks` it uses the statistics of
    the whole input set, gathered chunk by chunk.
    """

    normalises = True  # a normalisation layer, for FiLM (polyskill.nn.film)

    def __init__(self, weight: nn.Parameter | None, bias: nn.Parameter | None, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = weight, bias, eps

    def forward(self, x: Tensor) -> Tensor:
        streamed = streamed_statistics()
        if streamed is not None:
            return streamed.normalise(x, self.weight, self.bias, self.eps)
        if not _VMAPPED.get():
            return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)
        dims = [0, *range(2, x.dim())]
        var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
        shape = [1, -1] + [1] * (x.dim() - 2)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out


def task_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every batch-norm layer of `model` by a TaskBatchNorm (same parameters, same names).

    As in MAML, each task is normalised with its own statistics and no running statistics are kept, so
    nothing leaks from one task to the next and the model is a pure function of its parameters.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, TaskBatchNorm(child.weight, child.bias, child.eps))
    return model


def _key(name: str) -> str:
    """Parameter names as keys of a ParameterDict (which forbids dots)."""
    return name.replace(".", "-")


class SecondMoments(nn.Module):
    """Adam's second moments kept across inner loops and shared by all tasks, as buffers (so checkpointed).

    Reptile's reference implementation keeps one inner Adam optimizer for the whole of training, so its
    normalisation is a running average over every task seen; fresh per-task moments would turn each first
    step into lr * sign(g). `per_task` copies (see `copy`) hold one set of moments per task instead, each
    updated with that task's gradients alone.
    """

    count: Tensor

    def __init__(self, params: Params) -> None:
        super().__init__()
        self.values = nn.Module()
        for name, tensor in params.items():
            self.values.register_buffer(_key(name), torch.zeros_like(tensor))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.per_task = False

    def copy(self, tasks: int | None = None) -> SecondMoments:
        """An independent copy, for evaluation that must leave the training state as it was; with `tasks`, one
        copy per task (buffers [tasks, ...]), so that each task adapts from the trained moments by itself."""
        clone = SecondMoments(dict(self.values.named_buffers()))
        clone.load_state_dict(self.state_dict())
        if tasks is not None:
            for name, buffer in list(clone.values.named_buffers()):
                setattr(clone.values, name, buffer.expand(tasks, *buffer.shape).clone())
            clone.per_task = True
        return clone


class InnerLoop(nn.Module):
    """Adapts the parameters of `model` to a batch of tasks by `steps` gradient steps on their support loss.

    The learned rates (Meta-SGD, MAML++) are parameters of this module, hence meta-parameters of any
    algorithm that owns it. `adapt_names` selects the parameters that adapt (default: all of them).
    `vectorize` chooses how tasks are batched: `vmap` (while parameters are shared the network then runs as
    one large batch), a `loop` of per-task calls, or `auto`: vmap, except for a convolutional network on a
    CPU, where a loop of per-task calls (oneDNN's fast path, fused batch norm) beats vmap's grouped
    convolutions and its batch norm of elementary ops, whether the kernels adapt (MAML) or only the head does
    (ANIL: faster meta-steps and 3x faster evaluation on Conv4, a third of the memory on ResNet-12;
    docs/results.md).
    """

    def __init__(
        self,
        model: nn.Module,
        steps: int = 1,
        lr: float = 0.4,
        first_order: bool = False,
        adapt_names: Sequence[str] | None = None,
        learn_lr: str = "none",
        optimizer: str = "sgd",
        betas: tuple[float, float] = (0.0, 0.999),
        eps: float = 1e-8,
        vectorize: str = "auto",
    ) -> None:
        super().__init__()
        if vectorize not in VECTORIZE:
            raise ValueError(f"vectorize must be one of {', '.join(VECTORIZE)}, got {vectorize!r}")
        if learn_lr not in LEARN_LR:
            raise ValueError(f"learn_lr must be one of {', '.join(LEARN_LR)}, got {learn_lr!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if optimizer == "adam" and learn_lr != "none":
            raise ValueError("learned inner rates (Meta-SGD, MAML++) go with optimizer 'sgd'")
        if steps < 0 or lr <= 0:
            raise ValueError(f"the inner loop needs steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
        self.model = task_batch_norm(model)
        names = [name for name, _ in model.named_parameters()]
        self.adapt_names = list(names if adapt_names is None else adapt_names)
        missing = sorted(set(self.adapt_names) - set(names))
        if missing or not self.adapt_names:
            raise ValueError(f"no parameter(s) {missing or 'at all'} to adapt; the model has {names}")
        self.steps, self.lr, self.first_order = steps, lr, first_order
        self.learn_lr, self.optimizer, self.betas, self.eps = learn_lr, optimizer, betas, eps
        self.vectorize = vectorize
        self.rates = nn.ParameterDict()
        params = dict(model.named_parameters())
        for name in self.adapt_names:
            if learn_lr == "per_parameter":
                self.rates[_key(name)] = nn.Parameter(torch.full_like(params[name], lr))
            elif learn_lr == "per_step":
                self.rates[_key(name)] = nn.Parameter(torch.full((max(steps, 1),), float(lr)))

    # -- the network as a function ----------------------------------------------------------------
    def params(self) -> Params:
        """The meta-parameters of the network, shared by every task (with their autograd history)."""
        return dict(self.model.named_parameters())

    def forward_tasks(self, params: Params, x: Tensor, batched: set[str] | None = None) -> Tensor:
        """Outputs [B, M, ...] of each task's network on its inputs x [B, M, ...].

        Parameters named in `batched` have a leading task axis; the others are shared, and a layer whose
        parameters are all shared runs as one batch of B*M inputs (statistics stay per task).
        """
        batched = set() if batched is None else batched
        if self._loop():
            return torch.stack(
                [
                    functional_call(self.model, {n: t[b] if n in batched else t for n, t in params.items()}, (x[b],))
                    for b in range(x.shape[0])
                ]
            )
        in_dims = {name: 0 if name in batched else None for name in params}
        with _vmapped():
            return vmap(
                lambda p, xb: functional_call(self.model, p, (xb,)), in_dims=(in_dims, 0), randomness=RANDOMNESS
            )(params, x)

    def _loop(self) -> bool:
        """Loop over tasks rather than vmap? See `vectorize`."""
        if streamed_statistics() is not None:
            return True  # statistics gathered across chunks live outside any vmap
        if self.vectorize != "auto":
            return self.vectorize == "loop"
        return self.convolves_on_cpu()

    def convolves_on_cpu(self) -> bool:
        """Whether the network has convolution kernels and runs on a CPU: then, for tasks whose parameters
        differ, a loop of per-task calls (oneDNN's fast path, fused batch norm) beats vmap."""
        params = list(self.model.parameters())
        return any(p.dim() >= 3 for p in params) and params[0].device.type == "cpu"

    def _gradients(self, params: Params, x: Tensor, y: Tensor, batched: set[str], create_graph: bool) -> Params:
        """d(support loss of task b)/d(adapted parameters of task b), each [B, ...]; with `create_graph` the
        result stays differentiable with respect to `params` (second order). Parameters in `batched` carry a
        task axis."""
        if self._loop():
            return self._gradients_loop(params, x, y, batched, create_graph)
        adapted = {n: params[n] for n in self.adapt_names}
        shared = {n: t for n, t in params.items() if n not in adapted}

        def loss(a: Params, s: Params, xb: Tensor, yb: Tensor) -> Tensor:
            return task_loss(functional_call(self.model, {**s, **a}, (xb,)), yb)

        in_dims = (
            {n: 0 if n in batched else None for n in adapted},
            {n: 0 if n in batched else None for n in shared},
            0,
            0,
        )
        with _vmapped():
            return vmap(grad(loss), in_dims=in_dims, randomness=RANDOMNESS)(adapted, shared, x, y)

    def _gradients_loop(self, params: Params, x: Tensor, y: Tensor, batched: set[str], create_graph: bool) -> Params:
        names = self.adapt_names
        per_task: list[tuple[Tensor, ...]] = []
        with torch.enable_grad():
            if not create_graph:
                params = {n: t.detach().requires_grad_(n in names) for n, t in params.items()}
            for b in range(y.shape[0]):
                task = {n: t[b] if n in batched else t for n, t in params.items()}
                loss = task_loss(functional_call(self.model, task, (x[b],)), y[b])
                per_task.append(torch.autograd.grad(loss, [task[n] for n in names], create_graph=create_graph))
        return {n: torch.stack([g[i] for g in per_task]) for i, n in enumerate(names)}

    def rate(self, name: str, step: int) -> Tensor | float:
        """The inner learning rate of parameter `name` at inner step `step`."""
        if self.learn_lr == "none":
            return self.lr
        rate = self.rates[_key(name)]
        return rate if self.learn_lr == "per_parameter" else rate[min(step, rate.numel() - 1)]

    # -- adaptation ---------------------------------------------------------------------------------
    def adapt(
        self,
        params: Params,
        data: tuple[Tensor, Tensor] | Sequence[tuple[Tensor, Tensor]],
        steps: int | None = None,
        first_order: bool | None = None,
        second_moments: SecondMoments | None = None,
        batched: set[str] | None = None,
        rates: Params | None = None,
    ) -> list[Params]:
        """The trajectory [theta_1, ..., theta_steps] of adapted parameters for a batch of tasks.

        `data` is (x [B, S, ...], y [B, S]) used at every step, or a list of such pairs, step j using
        pair j mod len (mini-batches, as in Reptile). Each returned dict holds every parameter; the adapted
        ones are [B, ...]. With `first_order` the inner gradients carry no graph, so the outer gradient of an
        adapted parameter is the identity (FOMAML); otherwise it flows through the inner steps (MAML).
        With `second_moments`, Adam normalises by those running second moments (updated in place with the
        mean over tasks, or each task's own with `per_task` moments) instead of fresh per-task ones. `batched`
        names the parameters of `params` that already differ by task (a task-conditioned initialisation);
        `rates`, per adapted parameter, gives per-task learning rates broadcastable to [B, ...] that replace
        the loop's own.
        """
        if rates is not None and self.optimizer != "sgd":
            raise ValueError("per-task rates go with optimizer 'sgd'")
        steps = self.steps if steps is None else steps
        first_order = self.first_order if first_order is None else first_order
        pairs = [data] if isinstance(data, tuple) else list(data)
        current, batched = dict(params), set(batched or ())
        moments: dict[str, tuple[Tensor, Tensor]] = {}
        trajectory: list[Params] = []
        for step in range(steps):
            x, y = pairs[step % len(pairs)]
            if first_order:
                with torch.no_grad():
                    grads = self._gradients({n: t.detach() for n, t in current.items()}, x, y, batched, False)
            else:
                grads = self._gradients(current, x, y, batched, True)
            current = dict(current)
            for name in self.adapt_names:
                step_size = None if rates is None else rates[name]
                current[name] = current[name] - self._update(
                    name, step, grads[name], moments, second_moments, step_size
                )
            if second_moments is not None:
                second_moments.count += 1
            batched |= set(self.adapt_names)
            trajectory.append(current)
        return trajectory

    def adapted(
        self,
        data: tuple[Tensor, Tensor] | Sequence[tuple[Tensor, Tensor]],
        steps: int,
        second_moments: SecondMoments | None = None,
        params: Params | None = None,
        batched: set[str] | None = None,
        rates: Params | None = None,
    ) -> tuple[Params, set[str]]:
        """Detached parameters after `steps` first-order steps on `data` (for evaluation; no graph is kept),
        and the names of those that carry a task axis. `params`, `batched` and `rates` as in `adapt`
        (default: the meta-parameters, shared by every task, and the loop's own rates)."""
        pairs = [data] if isinstance(data, tuple) else list(data)
        batched = set(batched or ())
        with torch.inference_mode(False), torch.enable_grad():
            # tensors made under inference_mode (e.g. during evaluation) cannot enter autograd: copy them out
            pairs = [tuple(t.clone() if t.is_inference() else t for t in pair) for pair in pairs]
            start = self.params() if params is None else params
            start = {n: (t.clone() if t.is_inference() else t).detach() for n, t in start.items()}
            rates = (
                None
                if rates is None
                else {n: (t.clone() if t.is_inference() else t).detach() for n, t in rates.items()}
            )
            trajectory = self.adapt(
                start, pairs, steps=steps, first_order=True, second_moments=second_moments, batched=batched, rates=rates
            )
        if not trajectory:
            return start, batched
        return {n: t.detach() for n, t in trajectory[-1].items()}, batched | set(self.adapt_names)

    def query_outputs(
        self, params: Params, batched: set[str], support_x: Tensor, query_x: Tensor, transductive: bool = True
    ) -> Tensor:
        """Outputs [B, M, ...] on the queries of adapted tasks.

        Transductive (as in MAML's evaluation), batch norm uses the statistics of the whole query set;
        otherwise each query example is normalised together with its task's support set alone, so the
        prediction for one query never depends on the other queries.
        """
        if transductive:
            return self.forward_tasks(params, query_x, batched)
        outputs = []
        for b in range(query_x.shape[0]):
            task = {n: t[b] if n in batched else t for n, t in params.items()}
            queries = query_x.shape[1]
            joint = torch.cat(
                [support_x[b].unsqueeze(0).expand(queries, *support_x.shape[1:]), query_x[b].unsqueeze(1)], dim=1
            )  # [M, S+1, ...]: one batch per query
            with _vmapped():
                outputs.append(
                    vmap(lambda xj, p=task: functional_call(self.model, p, (xj,))[-1], randomness=RANDOMNESS)(joint)
                )
        return torch.stack(outputs)

    def _update(
        self,
        name: str,
        step: int,
        g: Tensor,
        moments: dict[str, tuple[Tensor, Tensor]],
        shared: SecondMoments | None = None,
        rate: Tensor | None = None,
    ) -> Tensor:
        """The step to subtract: rate * g for SGD (`rate`: per-task rates, else the loop's own), Adam's
        bias-corrected rate * m / (sqrt(v) + eps) for Adam."""
        if self.optimizer == "sgd":
            return (self.rate(name, step) if rate is None else rate) * g
        beta1, beta2 = self.betas
        m, v = moments.get(name, (torch.zeros_like(g), torch.zeros_like(g)))
        m = beta1 * m + (1 - beta1) * g
        if shared is None:
            v = beta2 * v + (1 - beta2) * g * g
            v_hat = v / (1 - beta2 ** (step + 1))
        else:
            running = getattr(shared.values, _key(name))
            with torch.no_grad():
                square = g * g if shared.per_task else (g * g).reshape(-1, *running.shape).mean(0)
                running.mul_(beta2).add_((1 - beta2) * square)
            v_hat = running / (1 - beta2 ** (int(shared.count) + 1))
        moments[name] = (m, v)
        return self.lr * (m / (1 - beta1 ** (step + 1))) / (v_hat.sqrt() + self.eps)
