"""Images as few-shot examples: Omniglot and a user's folders, the Conv4 and MLP backbones, and a user's own
images converted to what the run's model was trained on (mode, size, polarity)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ...data.augment import AUGMENT_PRESETS, Augment, AugmentSpec
from ...data.classes import ClassDataset
from ...data.folder import image_folder
from ...data.image_set_check import LOADERS
from ...data.omniglot_images import omniglot
from ...data.registry import IMAGE_SETS
from ...data.user_images import INVERT, InputFormat, convert, load_images, read_query, read_support
from ...errors import ClassifierError, ConfigError
from ...meta.contract import Contract
from ..learners import IMAGE_BACKBONES, network
from ..spec import at_least, build, choice, parsed
from .base import Root
from .modality import Modality

MAX_IMAGE_SIZE = 1024  # larger than any few-shot benchmark's images; beyond it one episode would not fit in memory


@dataclass(frozen=True)
class ImageSource:
    """Where a data set's classes come from, what its images look like to a model trained on them, and its
    defaults: `image_size`, and the first of the `channels` it takes."""

    load: Callable[[str, Root, ImageData], ClassDataset]
    input_format: Callable[[ImageData], InputFormat]
    channels: tuple[int, ...] = (1, 3)
    image_size: int = 28


def _colour(load: Callable[..., ClassDataset], image_size: int) -> ImageSource:
    """A colour few-shot set with `train`, `val` and `test` splits, read as RGB at `data.image_size`."""
    return ImageSource(
        lambda where, root, spec: load(where, root=root, image_size=spec.image_size),
        lambda spec: InputFormat(3, (spec.image_size,) * 2),
        channels=(3,),
        image_size=image_size,
    )


IMAGE_SOURCES: dict[str, ImageSource] = {
    "omniglot": ImageSource(
        lambda where, root, spec: omniglot(where, root=root, image_size=spec.image_size),
        lambda spec: InputFormat(1, (spec.image_size,) * 2, bright_foreground=True, keep_aspect=True),
        channels=(1,),
    ),
    "folder": ImageSource(
        lambda where, root, spec: image_folder(where, image_size=spec.image_size, channels=spec.channels),
        lambda spec: InputFormat(spec.channels, (spec.image_size,) * 2),
    ),
    **{name: _colour(load, IMAGE_SETS[name].image_size) for name, load in LOADERS.items()},
}


def parse_augment(values: Any, key: str) -> AugmentSpec:
    """`data.augment`: a preset name (`none`, `standard`; null is none) or a mapping of AugmentSpec's settings."""
    if values is None or isinstance(values, str):
        preset = AUGMENT_PRESETS.get("none" if values is None else values)
        if preset is None:
            raise ConfigError(
                f"{key} must be {', '.join(AUGMENT_PRESETS)} or a mapping of its settings, got {str(values)[:80]!r}"
            )
        return replace(preset)
    return build(AugmentSpec, values, f"{key}.")


@dataclass
class ImageData:
    """Which classes to train, validate and test on: Omniglot splits (`vinyals/train`, ...), `train`, `val` and
    `test` of miniimagenet, tieredimagenet, cifarfs and cub, or for `folder` paths of folders of class
    sub-folders. `val: null` trains without validation (the last weights are kept). `image_size` and `channels`
    0 take the data set's own (Omniglot 28 px grey; miniImageNet, tieredImageNet and CUB 84 px RGB; CIFAR-FS 32
    px RGB). `augment` transforms the images of the training stream only: `none`, `standard` or its settings."""

    dataset: str = choice("omniglot", tuple(IMAGE_SOURCES))
    train: str = "vinyals/train"
    val: str | None = "vinyals/val"
    test: str = "vinyals/test"
    image_size: int = 0
    channels: int = 0
    augment: AugmentSpec = parsed(AugmentSpec, parse_augment)  # noqa: RUF009 - returns a field()

    def __post_init__(self) -> None:
        source = IMAGE_SOURCES[self.dataset]
        self.image_size = self.image_size or source.image_size
        self.channels = self.channels or source.channels[0]
        at_least(self, image_size=1)
        if self.image_size > MAX_IMAGE_SIZE:
            raise ValueError(
                f"image_size must be <= {MAX_IMAGE_SIZE} (images are resized to it), got {self.image_size}"
            )
        if self.channels not in source.channels:
            raise ValueError(
                f"channels must be {' or '.join(map(str, source.channels))} for {self.dataset}, got {self.channels}"
            )
        if self.augment.hue > 0 and self.channels != 3:
            raise ValueError("augment.hue turns colours: it needs RGB images (channels 3)")

    def augmentation(self) -> Augment | None:
        """What transforms the training stream's images (None: nothing)."""
        return self.augment.pipeline()


Images = Tensor | np.ndarray | Sequence[Any]


@dataclass
class ImageInputs:
    """A user's images as a run's model takes them: a tensor or array already in the model's format ([n, C, H,
    W], or [n, H, W] for greyscale; uint8 scaled to [0, 1]; other sizes resized), PIL images or image paths,
    converted as `polyskill adapt` converts files (mode, size, polarity: `invert`)."""

    format: InputFormat
    invert: str = "auto"
    #: what a prediction row names its example by
    column: ClassVar[str] = "file"

    def __post_init__(self) -> None:
        if self.invert not in INVERT:
            raise ClassifierError(f"invert must be one of {', '.join(INVERT)}, got {self.invert!r}")

    def convert(self, X: Images) -> Tensor:
        """Any accepted X -> float [n, C, H, W]."""
        fmt = self.format
        if X is None:
            raise ClassifierError("X is None: give images (a tensor or array [n, C, H, W], or PIL images or paths)")
        if isinstance(X, (Tensor, np.ndarray)):
            return self._array(X)
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
        return x

    def _array(self, X: Tensor | np.ndarray) -> Tensor:
        fmt = self.format
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
                f"expected images [n, {fmt.channels}, H, W]{' or [n, H, W]' if fmt.channels == 1 else ''}, "
                f"got shape {tuple(x.shape)}"
            )
        if len(x) == 0:
            raise ClassifierError("no images given")
        if not torch.isfinite(x).all():
            raise ClassifierError("X holds NaN or infinite pixel values")
        if tuple(x.shape[2:]) != fmt.size:
            x = F.interpolate(x, size=fmt.size, mode="bilinear", antialias=True, align_corners=False)
        return x

    def read_support(self, path: str | os.PathLike) -> tuple[Tensor, np.ndarray]:
        """SUPPORT/<class>/<image> -> (images, their class names)."""
        x, y, classes = read_support(path, self.format, self.invert)
        return x, np.asarray(classes, dtype=object)[y.numpy()]

    def read_query(self, path: str | os.PathLike) -> tuple[Tensor, list[str]]:
        """Every image under QUERY -> (images, paths relative to QUERY)."""
        return read_query(path, self.format, self.invert)


class ImageModality(Modality):
    name = "image"
    data_type = ImageData
    datasets = tuple(IMAGE_SOURCES)
    backbones: ClassVar[dict[str, type]] = IMAGE_BACKBONES

    def classes(self, recipe: Any, where: str, root: Root = None) -> ClassDataset:
        return IMAGE_SOURCES[recipe.data.dataset].load(where, root, recipe.data)

    def input_shape(self, recipe: Any) -> tuple[int, ...]:
        return (recipe.data.channels, recipe.data.image_size, recipe.data.image_size)

    def network(self, recipe: Any, outputs: int | None) -> nn.Module:
        return network(recipe.model, self.input_shape(recipe), outputs, flatten=True)

    def check(self, recipe: Any, needs: Contract) -> None:
        if needs.feature_maps and recipe.model.backbone == "mlp":
            raise ConfigError(
                f"{recipe.algo['name']} compares feature maps: it needs model.backbone conv4, resnet12 or wrn"
            )
        if recipe.model.backbone == "mlp" and not needs.output_layer:
            raise ConfigError(f"model.backbone mlp needs a learner with an output layer, not {recipe.algo['name']}")

    def inputs(self, recipe: Any, invert: str = "auto", truncate: bool = False) -> ImageInputs:
        return ImageInputs(IMAGE_SOURCES[recipe.data.dataset].input_format(recipe.data), invert)
