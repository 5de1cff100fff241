"""A scikit-learn-style few-shot classifier over any trained run: fit on a few labelled examples, predict.

    clf = FewShotClassifier.from_run("runs/protonet").fit(support_images, support_labels)
    clf.predict(query_images), clf.predict_proba(query_images)
    FewShotClassifier.from_run("runs/banking77").fit(["card lost", ...], ["lost_card", ...]).predict(["where is it?"])

It works for every algorithm through `FewShotAlgorithm.adapt`, so what `fit` does is the algorithm's own
adaptation (prototypes, a ridge or SVM head, inner-loop steps, a fitted linear head, ...); the run's modality
(images, text) turns the examples into the model's inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .data.episodes import Support
from .data.user_images import InputFormat
from .errors import ClassifierError, ConfigError
from .meta.base import FewShotAlgorithm, Predictor, SplitPredictor
from .meta.batch_statistics import transduce_in_chunks
from .meta.contract import is_transductive, transduces_by_batch_norm
from .recipes.kinds.fewshot_images import ImageInputs
from .train.device import check_device

Examples = Tensor | np.ndarray | Sequence[Any]

__all__ = ["AdaptedTask", "ClassifierError", "FewShotClassifier"]


def _labels(y: Any) -> np.ndarray:
    """y as a 1-d array of labels, or ClassifierError (None, nested, missing or NaN labels)."""
    if y is None:
        raise ClassifierError("y is None: give one label per example")
    try:
        labels = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y)
    except (TypeError, ValueError) as exc:
        raise ClassifierError(f"y must be a sequence of labels ({exc})") from None
    if labels.ndim != 1:
        raise ClassifierError(f"y must hold one label per example, a 1-d sequence; got labels of shape {labels.shape}")
    if any(label is None for label in labels.tolist()):
        raise ClassifierError("y holds None: every example needs a label")
    if labels.dtype.kind in "fc" and not np.isfinite(labels).all():
        raise ClassifierError("y holds NaN or infinite labels")
    return labels


@dataclass(frozen=True)
class AdaptedTask:
    """One learned task: the algorithm's predictor and the class labels its score columns stand for."""

    predictor: Predictor
    classes: np.ndarray

    def scores(self, x: Tensor) -> Tensor:
        """The predictor's scores of inputs x, cut to this task's classes (a fixed-size head has more)."""
        return self.predictor(x)[:, : len(self.classes)]


class FewShotClassifier:
    """Few-shot classification with a trained algorithm: `fit(X, y)` adapts to labelled examples of new
    classes (labels of any type), `predict` / `predict_proba` label new examples.

    X is what the run's modality takes (`inputs.convert`): for images a tensor or array already in the model's
    format ([n, C, H, W], or [n, H, W] for greyscale; uint8 is scaled to [0, 1]; other sizes are resized), or a
    sequence of PIL images or image paths, converted like `polyskill adapt` converts files; for text a list of
    strings.
    """

    def __init__(
        self,
        algo: FewShotAlgorithm,
        inputs: Any,
        max_way: int | None = None,
        device: str | torch.device = "cpu",
        invert: str = "auto",
        batch_size: int = 256,
    ) -> None:
        if isinstance(inputs, InputFormat):
            inputs = ImageInputs(inputs, invert)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ClassifierError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.device = check_device(device, "device")
        self.algo, self.inputs, self.max_way = algo.to(self.device).eval(), inputs, max_way
        self.batch_size = batch_size
        self._task: AdaptedTask | None = None

    @classmethod
    def from_run(
        cls, run: str | os.PathLike, device: str | torch.device = "cpu", invert: str = "auto", truncate: bool = False
    ) -> FewShotClassifier:
        """The classifier of a trained run directory (its best, else last, weights; loaded weights-only).
        `invert` applies to image runs (see `polyskill adapt`), `truncate` to text runs (cut texts longer than the
        encoder's window instead of refusing them)."""
        from .recipes.runner import trained_model

        recipe, algo = trained_model(run)
        return cls.from_recipe(recipe, algo, device, invert, truncate, where=str(run))

    @classmethod
    def from_recipe(
        cls,
        recipe: Any,
        algo: Any,
        device: str | torch.device = "cpu",
        invert: str = "auto",
        truncate: bool = False,
        where: str = "the run",
    ) -> FewShotClassifier:
        """The classifier of a loaded run (its recipe and trained algorithm; see `from_run`)."""
        from .recipes.kinds.fewshot import FewShotRecipe, max_way, modality

        if not isinstance(recipe, FewShotRecipe):
            raise ConfigError(f"{where} is a {recipe.kind} run: classifying examples needs a few-shot run")
        inputs = modality(recipe).inputs(recipe, invert=invert, truncate=truncate)
        return cls(algo, inputs, max_way(recipe), device=device)

    def _examples(self, X: Examples) -> Tensor:
        """Any accepted X -> the model's inputs on its device."""
        return self.inputs.convert(X).to(self.device)

    # -- the estimator ------------------------------------------------------------------------------
    def fit(self, X: Examples, y: Sequence[Any] | np.ndarray | Tensor) -> FewShotClassifier:
        """Adapt to the labelled support examples X, y (every class needs at least one example)."""
        labels = _labels(y)  # label errors first: they need no example converted
        self._task = self.adapt_task(self._examples(X), labels)
        return self

    def adapt_task(self, x: Tensor, y: Sequence[Any] | np.ndarray | Tensor) -> AdaptedTask:
        """The task learned from converted support inputs x (see `inputs.convert`) and their labels, without
        making it this classifier's own: a server keeps many tasks of one model this way."""
        labels = _labels(y)
        if len(labels) != len(x):
            raise ClassifierError(f"y must hold one label per example: {len(x)} examples, {len(labels)} labels")
        try:
            classes, index = np.unique(labels, return_inverse=True)
        except TypeError:
            raise ClassifierError(
                "the labels in y cannot be compared with each other: give labels of one type"
            ) from None
        way = len(classes)
        if way < 2:
            raise ClassifierError(f"few-shot classification needs at least 2 classes, got {way}")
        if self.max_way is not None and way > self.max_way:
            raise ClassifierError(
                f"{way} classes given, but this model has a {self.max_way}-way output layer and "
                f"can tell apart at most {self.max_way}"
            )
        x = x.to(self.device)
        support = Support(x, torch.as_tensor(index, dtype=torch.long, device=self.device), way)
        return AdaptedTask(self.algo.adapt(support), classes)

    def _fitted(self) -> AdaptedTask:
        """The adapted task, or ClassifierError before `fit`."""
        if self._task is None:
            raise ClassifierError("call fit(support_x, support_y) before predict")
        return self._task

    @property
    def classes_(self) -> np.ndarray | None:
        """The class labels `fit` saw, sorted (None before `fit`)."""
        return None if self._task is None else self._task.classes

    @property
    def fitted_classes(self) -> np.ndarray:
        """`classes_` of a fitted classifier (ClassifierError before `fit`)."""
        return self._fitted().classes

    def task_probabilities(self, task: AdaptedTask, x: Tensor) -> Tensor:
        """Class probabilities [n, classes] of converted inputs x under an adapted task.

        The network runs on `batch_size` inputs at a time wherever that cannot change an answer: a two-stage
        predictor (the metric learners) embeds the inputs in batches, then its head scores all of them at once, so
        a transductive head (TIM, PT-MAP, ...) transduces over the whole of x; MAML's batch norm over the query set
        runs in batches with the statistics of the whole of x, gathered first layer by layer; any other transductive
        predictor runs on the whole of x in one pass; the rest run in batches.
        """
        x = x.to(self.device)
        with torch.no_grad():
            predictor = task.predictor
            if isinstance(predictor, SplitPredictor):
                z = torch.cat([predictor.features(chunk) for chunk in x.split(self.batch_size)])
                scores = predictor.head(z)[:, : len(task.classes)]
            elif transduces_by_batch_norm(self.algo):
                scores = transduce_in_chunks(task.scores, x, self.batch_size)
            elif is_transductive(self.algo):
                scores = task.scores(x)
            else:
                scores = torch.cat([task.scores(chunk) for chunk in x.split(self.batch_size)])
        return self.algo.probabilities(scores)

    def _scores(self, X: Examples) -> Tensor:
        return self.task_probabilities(self._fitted(), self._examples(X))

    def predict_proba(self, X: Examples) -> np.ndarray:
        """Class probabilities [n, classes], columns in the order of `classes_`."""
        return self._scores(X).cpu().numpy()

    def predict(self, X: Examples) -> np.ndarray:
        """The most probable class label of each example."""
        return self.fitted_classes[self._scores(X).argmax(-1).cpu().numpy()]

    def score(self, X: Examples, y: Sequence[Any] | np.ndarray) -> float:
        """Accuracy of `predict(X)` against the labels y."""
        predicted, labels = self.predict(X), _labels(y)
        if len(labels) != len(predicted):
            raise ClassifierError(f"y must hold one label per example: {len(predicted)} examples, {len(labels)} labels")
        return float(np.mean(predicted == labels))
