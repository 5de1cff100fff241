"""A scikit-learn-style few-shot classifier over any trained run: fit on a few labelled examples, predict.

    clf = FewShotClassifier.from_run("runs/protonet").fit(support_images, support_labels)
    clf.predict(query_images), clf.predict_proba(query_images)

It works for every algorithm through `FewShotAlgorithm.adapt`, so what `fit` does is the algorithm's own
adaptation (prototypes, a ridge or SVM head, inner-loop steps, a fitted linear head, ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .data.episodes import Support
from .data.user_images import INVERT, InputFormat, convert, load_images
from .errors import ConfigError, DataError
from .meta.base import FewShotAlgorithm, Predictor
from .train.device import check_device

Images = Tensor | np.ndarray | Sequence[Any]


class ClassifierError(DataError, ValueError):
    """Examples or labels the classifier cannot take, or a call out of order (predict before fit): a DataError
    for the command line, a ValueError for scikit-learn-style callers."""


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


class FewShotClassifier:
    """Few-shot classification with a trained algorithm: `fit(X, y)` adapts to labelled examples of new
    classes (labels of any type), `predict` / `predict_proba` label new examples.

    X is a tensor or array of images already in the model's format ([n, C, H, W], or [n, H, W] for
    greyscale; uint8 is scaled to [0, 1]; other sizes are resized), or a sequence of PIL images or image
    paths, which are converted like `polyskill adapt` converts files (mode, size, polarity).
    """

    def __init__(
        self,
        algo: FewShotAlgorithm,
        input_format: InputFormat,
        max_way: int | None = None,
        device: str | torch.device = "cpu",
        invert: str = "auto",
        batch_size: int = 256,
    ) -> None:
        if invert not in INVERT:
            raise ClassifierError(f"invert must be one of {', '.join(INVERT)}, got {invert!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ClassifierError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.device = check_device(device, "device")
        self.algo, self.input_format, self.max_way = algo.to(self.device).eval(), input_format, max_way
        self.invert, self.batch_size = invert, batch_size
        self.classes_: np.ndarray | None = None
        self._predictor: Predictor | None = None

    @classmethod
    def from_run(
        cls, run: str | os.PathLike, device: str | torch.device = "cpu", invert: str = "auto"
    ) -> FewShotClassifier:
        """The classifier of a trained run directory (its best, else last, weights; loaded weights-only)."""
        from .recipes.kinds.fewshot import FewShotRecipe, input_format, max_way
        from .recipes.runner import trained_model

        recipe, algo = trained_model(run)
        if not isinstance(recipe, FewShotRecipe):
            raise ConfigError(f"{run} is a {recipe.kind} run: classifying images needs a few-shot image run")
        return cls(algo, input_format(recipe), max_way(recipe), device=device, invert=invert)  # type: ignore[arg-type]

    # -- inputs ---------------------------------------------------------------------------------------
    def _images(self, X: Images) -> Tensor:
        """Any accepted X -> float [n, C, H, W] on the model's device."""
        fmt = self.input_format
        if X is None:
            raise ClassifierError("X is None: give images (a tensor or array [n, C, H, W], or PIL images or paths)")
        if isinstance(X, (Tensor, np.ndarray)):
            try:
                x = torch.as_tensor(X)
            except (TypeError, ValueError, RuntimeError):
                raise ClassifierError(f"X must be an array of numbers, got one of {getattr(X, 'dtype', '?')}") from None
            if x.dtype == torch.bool or x.is_complex():
                raise ClassifierError(f"X must hold real pixel values, got {x.dtype}")
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
            if x.dim() == 3 and fmt.channels == 1:
                x = x.unsqueeze(1)
            if x.dim() != 4 or x.shape[1] != fmt.channels or 0 in x.shape[2:]:
                raise ClassifierError(
                    f"expected images [n, {fmt.channels}, H, W]"
                    f"{' or [n, H, W]' if fmt.channels == 1 else ''}, got shape {tuple(x.shape)}"
                )
            if not torch.isfinite(x).all():
                raise ClassifierError("X holds NaN or infinite pixel values")
            if tuple(x.shape[2:]) != fmt.size:
                x = F.interpolate(x, size=fmt.size, mode="bilinear", antialias=True, align_corners=False)
        else:
            try:
                items = None if isinstance(X, (str, bytes, os.PathLike, Image.Image)) else list(X)
            except TypeError:
                items = None
            if items is None:
                raise ClassifierError(
                    f"X must be an image tensor or array, or a list of PIL images or paths; got {type(X).__name__}"
                )
            paths = [Path(i) for i in items if isinstance(i, (str, os.PathLike))]
            if paths and len(paths) != len(items):
                raise ClassifierError("give either image paths or PIL images, not a mix")
            if paths:
                x, bad = load_images(paths, fmt, self.invert)
                if bad:
                    raise ClassifierError("cannot use these images: " + "; ".join(bad))
            elif all(isinstance(i, Image.Image) for i in items) and items:
                x = torch.stack([convert(i, fmt, self.invert) for i in items])
            else:
                raise ClassifierError("X must be an image tensor or array, or a non-empty list of PIL images or paths")
        if len(x) == 0:
            raise ClassifierError("no images given")
        return x.to(self.device)

    # -- the estimator ------------------------------------------------------------------------------
    def fit(self, X: Images, y: Sequence[Any] | np.ndarray | Tensor) -> FewShotClassifier:
        """Adapt to the labelled support examples X, y (every class needs at least one example)."""
        labels = _labels(y)
        x = self._images(X)
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
        support = Support(x, torch.as_tensor(index, dtype=torch.long, device=self.device), way)
        self._predictor, self.classes_ = self.algo.adapt(support), classes
        return self

    def _fitted(self) -> tuple[Predictor, np.ndarray]:
        """The adapted predictor and the class labels, or ClassifierError before `fit`."""
        if self._predictor is None or self.classes_ is None:
            raise ClassifierError("call fit(support_x, support_y) before predict")
        return self._predictor, self.classes_

    @property
    def fitted_classes(self) -> np.ndarray:
        """`classes_` of a fitted classifier (ClassifierError before `fit`)."""
        return self._fitted()[1]

    def _scores(self, X: Images) -> Tensor:
        predictor, classes = self._fitted()
        x, way = self._images(X), len(classes)
        with torch.no_grad():
            scores = torch.cat(
                [predictor(x[i : i + self.batch_size])[:, :way] for i in range(0, len(x), self.batch_size)]
            )
        return self.algo.probabilities(scores)

    def predict_proba(self, X: Images) -> np.ndarray:
        """Class probabilities [n, classes], columns in the order of `classes_`."""
        return self._scores(X).cpu().numpy()

    def predict(self, X: Images) -> np.ndarray:
        """The most probable class label of each example."""
        return self.fitted_classes[self._scores(X).argmax(-1).cpu().numpy()]

    def score(self, X: Images, y: Sequence[Any] | np.ndarray) -> float:
        """Accuracy of `predict(X)` against the labels y."""
        predicted, labels = self.predict(X), _labels(y)
        if len(labels) != len(predicted):
            raise ClassifierError(f"y must hold one label per example: {len(predicted)} examples, {len(labels)} labels")
        return float(np.mean(predicted == labels))
