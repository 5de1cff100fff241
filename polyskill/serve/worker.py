"""A served model's worker thread: every adaptation and prediction of the model runs there, off the event loop and
one at a time (so no two requests touch the model's modules at once), and predictions that arrive together run
as one batch.

A batch is what is queued within `window_s` of its first prediction, up to `max_queries` queries. Its texts are
embedded in one call; for predictors in two stages (`SplitPredictor`: the metric learners) every query of the
batch, whatever its task, goes through the shared first stage in one pass and each request's own head scores its
slice; other predictors (MAML's transductive batch norm looks at the whole query set) run each request alone, so
a prediction never depends on another request's queries.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..classifier import AdaptedTask, FewShotClassifier
from ..meta.base import SplitPredictor
from .config import Batching
from .memory import release_freed_memory
from .readers import Prepared, Reader

log = logging.getLogger("polyskill.serve")
TRIM_EVERY_S = 1.0  # memory freed by adaptations is given back at most this often (and when idle)


@dataclass
class Adaptation:
    """A task to learn: `run` does it on the worker thread."""

    run: Callable[[], AdaptedTask]
    future: Future = field(default_factory=Future)


@dataclass
class Prediction:
    """Queries to label under a learned task."""

    task: AdaptedTask
    prepared: Prepared
    future: Future = field(default_factory=Future)


Job = Adaptation | Prediction


class Idle:
    """What the worker's loop gets when no job came within TRIM_EVERY_S."""


class ModelWorker:
    """The thread that runs one model; `adapt` and `predict` are awaited from the event loop."""

    def __init__(self, classifier: FewShotClassifier, reader: Reader, batching: Batching, name: str = "") -> None:
        self.classifier, self.reader, self.batching = classifier, reader, batching
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self.batches = 0  # prediction batches run so far
        self._thread = threading.Thread(target=self._loop, name=f"polyskill-model-{name}", daemon=True)
        self._thread.start()

    async def adapt(self, prepared: Prepared, labels: list[str]) -> AdaptedTask:
        """Learn a task from prepared support examples and their labels."""

        def run() -> AdaptedTask:
            return self.classifier.adapt_task(self.reader.inputs_of([prepared]), labels)

        return await self._submit(Adaptation(run))

    async def predict(self, task: AdaptedTask, prepared: Prepared) -> np.ndarray:
        """Class probabilities [n, classes] of prepared queries under `task`."""
        return await self._submit(Prediction(task, prepared))

    async def _submit(self, job: Job) -> Any:
        self._queue.put(job)
        return await asyncio.wrap_future(job.future)

    def close(self) -> None:
        """Stop the thread once the jobs already queued are done."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    # -- the worker thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        untrimmed, trimmed_at = False, time.monotonic()  # memory freed by adaptations not yet given back
        while True:
            job: Job | Idle | None
            try:
                job = self._queue.get(timeout=TRIM_EVERY_S if untrimmed else None)
            except queue.Empty:  # idle after teaching tasks: the check below gives back what they freed
                job = Idle()
            if job is None:
                return
            if isinstance(job, Adaptation):
                self._settle(job, job.run)
                untrimmed = True
            elif isinstance(job, Prediction):
                batch, later, stop = self._gather(job)
                self._predict(batch)
                for adaptation in later:
                    self._settle(adaptation, adaptation.run)
                    untrimmed = True
                if stop:
                    return
            if untrimmed and time.monotonic() - trimmed_at >= TRIM_EVERY_S:  # at most once a second, even busy
                release_freed_memory()
                untrimmed, trimmed_at = False, time.monotonic()

    def _gather(self, first: Prediction) -> tuple[list[Prediction], list[Adaptation], bool]:
        """The predictions queued within the window of `first` (up to the query limit), the adaptations met on
        the way (run after the batch, in order), and whether the worker was asked to stop."""
        batch: list[Prediction] = [first]
        later: list[Adaptation] = []
        queries = len(first.prepared)
        deadline = time.monotonic() + self.batching.window_s
        while queries < self.batching.max_queries:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return batch, later, True
            if isinstance(job, Adaptation):
                later.append(job)
                continue
            batch.append(job)
            queries += len(job.prepared)
        return batch, later, False

    def _settle(self, job: Job, run: Callable[[], Any]) -> None:
        """Run `run` and hand its value, or its exception, to the waiting request."""
        try:
            job.future.set_result(run())
        except Exception as exc:
            job.future.set_exception(exc)

    def _predict(self, jobs: list[Prediction]) -> None:
        """Every prediction of the batch, or, if the batch as a whole fails, each one on its own (so one request's
        failure is only its own)."""
        self.batches += 1
        if len(jobs) == 1:
            self._settle(jobs[0], partial(self._one, jobs[0]))
            return
        try:
            results = self._probabilities(jobs)
        except Exception:
            log.exception("a batch of %d predictions failed; running them one by one", len(jobs))
            for job in jobs:
                self._settle(job, partial(self._one, job))
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)

    def _one(self, job: Prediction) -> np.ndarray:
        return self._probabilities([job])[0]

    def _probabilities(self, jobs: list[Prediction]) -> list[np.ndarray]:
        """Class probabilities of each job's queries: one input conversion for the batch, one shared first stage
        per group of split predictors, each job's own head (or whole predictor) on its own queries."""
        clf = self.classifier
        x = self.reader.inputs_of([job.prepared for job in jobs]).to(clf.device)
        slices = list(torch.split(x, [len(job.prepared) for job in jobs]))
        results: dict[int, Tensor] = {}
        groups: dict[int, list[int]] = {}
        for i, job in enumerate(jobs):
            predictor = job.task.predictor
            if isinstance(predictor, SplitPredictor):
                groups.setdefault(id(predictor.shared), []).append(i)
            else:
                results[i] = clf.task_probabilities(job.task, slices[i])
        for group in groups.values():
            first: SplitPredictor = jobs[group[0]].task.predictor  # type: ignore[assignment]
            z = first.features(torch.cat([slices[i] for i in group]))
            for i, zi in zip(group, torch.split(z, [len(slices[i]) for i in group]), strict=True):
                task = jobs[i].task
                head: SplitPredictor = task.predictor  # type: ignore[assignment]
                results[i] = clf.algo.probabilities(head.head(zi)[:, : len(task.classes)])
        return [results[i].cpu().numpy() for i in range(len(jobs))]  # every job has its result by now
