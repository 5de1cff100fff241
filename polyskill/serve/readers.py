"""How a request's examples become a model's inputs, one reader per modality: images come as multipart uploads,
texts as JSON. `support` and `queries` check and prepare a request's examples (decoding images: run off the event
loop); `inputs_of` turns the prepared examples of one or many requests into one tensor on the model's worker thread
(texts of concurrent requests are embedded together there)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data.image_file import ImageRefused, ImageTooLarge, open_image
from ..errors import ClassifierError
from ..recipes.kinds.fewshot_images import ImageInputs
from ..recipes.kinds.fewshot_text import TextInputs, TextTooLong
from .config import ServeLimits
from .errors import ApiError

MAX_LABEL_CHARS = 200


@dataclass
class Form:
    """A parsed multipart body: its text fields and its files (file name, bytes), each in the order sent."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)


@dataclass
class Prepared:
    """A request's examples, checked and ready for `Reader.inputs_of`, with the name each prediction is given."""

    examples: Any
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


def clean_labels(labels: list[Any], examples: int) -> list[str]:
    """One non-empty string label (at most MAX_LABEL_CHARS, stripped) per example, or a 422 saying what is wrong."""
    if len(labels) != examples:
        raise ApiError(422, "bad_label", f"{examples} examples but {len(labels)} labels: give one label per example")
    cleaned = []
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ApiError(422, "bad_label", f"label {i} is {'empty' if isinstance(label, str) else 'not a string'}")
        if len(label) > MAX_LABEL_CHARS:
            raise ApiError(422, "bad_label", f"label {i} is {len(label)} characters long; at most {MAX_LABEL_CHARS}")
        cleaned.append(label.strip())
    return cleaned


def only(payload: dict[str, Any] | Form, allowed: tuple[str, ...]) -> None:
    """A 400 naming any field of the body other than `allowed` (a misspelt `modle` is not silently ignored)."""
    names = set(payload) if isinstance(payload, dict) else set(payload.fields) | set(payload.files)
    unknown = sorted(names - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "bad_request",
            f"unknown field(s) {', '.join(map(repr, unknown))}: this request takes {', '.join(allowed)}",
        )


class Reader:
    """The requests one modality takes (`media_type`) and how their examples reach the model."""

    media_type: ClassVar[str]

    def __init__(self, inputs: Any, limits: ServeLimits) -> None:
        self.inputs, self.limits = inputs, limits

    def describe(self) -> dict[str, Any]:
        """The `input` entry of `GET /v1/models`."""
        raise NotImplementedError

    def support(self, payload: Any) -> tuple[Prepared, list[str]]:
        """A task's labelled examples -> (prepared examples, their labels); the service has already refused
        fields other than the model and the examples."""
        raise NotImplementedError

    def queries(self, payload: Any) -> Prepared:
        """A prediction request's examples -> prepared examples."""
        raise NotImplementedError

    def inputs_of(self, batch: list[Prepared]) -> Tensor:
        """The model's inputs for every example of `batch`, in order."""
        raise NotImplementedError


class ImageReader(Reader):
    """Images as repeated `images` file parts of a multipart form, labelled by repeated `labels` fields."""

    media_type = "multipart/form-data"
    inputs: ImageInputs

    def describe(self) -> dict[str, Any]:
        fmt = self.inputs.format
        return {"channels": fmt.channels, "height": fmt.size[0], "width": fmt.size[1]}

    def _images(self, form: Form) -> Prepared:
        files = form.files.get("images", [])
        if not files:
            raise ApiError(422, "bad_examples", "no images given: send each as an 'images' file part")
        if len(files) > self.limits.max_images:
            raise ApiError(
                422, "too_many_images", f"{len(files)} images given; at most {self.limits.max_images} per request"
            )
        tensors, bad, too_large = [], [], False
        for name, data in files:
            try:
                with open_image(io.BytesIO(data), self.limits.max_pixels, name=name or "<unnamed>") as image:
                    tensors.append(self.inputs.convert([image]))
            except ImageRefused as exc:
                too_large = too_large or isinstance(exc, ImageTooLarge)
                bad.append(f"{exc.path} ({exc.reason})")
            except ClassifierError as exc:
                bad.append(f"{name} ({exc})")
            except Exception as exc:  # a hostile file can make a decoder fail in ways no list foresees
                bad.append(f"{name} (unreadable: {type(exc).__name__})")
        if bad:
            shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise ApiError(422, "image_too_large" if too_large else "bad_image", f"cannot use these images: {shown}")
        return Prepared(torch.cat(tensors), [name for name, _ in files])

    def support(self, payload: Form) -> tuple[Prepared, list[str]]:
        prepared = self._images(payload)
        return prepared, clean_labels(list(payload.fields.get("labels", [])), len(prepared))

    def queries(self, payload: Form) -> Prepared:
        only(payload, ("images",))
        return self._images(payload)

    def inputs_of(self, batch: list[Prepared]) -> Tensor:
        return torch.cat([p.examples for p in batch])


class TextReader(Reader):
    """Texts as JSON: `{"examples": [{"text", "label"}, ...]}` for a task, `{"texts": [...]}` to predict.

    A Hugging Face fast tokenizer is not safe to call from two threads at once (each call may reset its
    truncation state: "Already borrowed"), and requests are checked on several threads while the worker embeds:
    every use of the tokenizer holds one lock."""

    media_type = "application/json"
    inputs: TextInputs

    def __init__(self, inputs: TextInputs, limits: ServeLimits) -> None:
        super().__init__(inputs, limits)
        self._tokenizer = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"max_tokens": int(self.inputs.featurize.max_length), "truncate": bool(self.inputs.truncate)}

    def _texts(self, texts: list[Any]) -> list[str]:
        if not texts:
            raise ApiError(422, "bad_examples", "no texts given")
        if len(texts) > self.limits.max_texts:
            raise ApiError(
                422, "too_many_texts", f"{len(texts)} texts given; at most {self.limits.max_texts} per request"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ApiError(400, "bad_request", f"text {i} is a {type(text).__name__}, not a string")
            if len(text) > self.limits.max_text_chars:
                raise ApiError(
                    422,
                    "text_too_long",
                    f"text {i} is {len(text)} characters long; at most {self.limits.max_text_chars}",
                )
        try:
            with self._tokenizer:
                return self.inputs.check(texts)
        except TextTooLong as exc:
            raise ApiError(422, "text_too_long", str(exc)) from None
        except ClassifierError as exc:
            raise ApiError(422, "bad_examples", str(exc)) from None

    def support(self, payload: dict[str, Any]) -> tuple[Prepared, list[str]]:
        examples = payload.get("examples")
        if not isinstance(examples, list) or not all(isinstance(e, dict) for e in examples):
            raise ApiError(400, "bad_request", 'give "examples": a list of {"text": ..., "label": ...} objects')
        wrong = [i for i, e in enumerate(examples) if set(e) != {"text", "label"}]
        if wrong:
            raise ApiError(400, "bad_request", f'example {wrong[0]} must have exactly "text" and "label"')
        texts = self._texts([e["text"] for e in examples])
        return Prepared(texts, texts), clean_labels([e["label"] for e in examples], len(texts))

    def queries(self, payload: dict[str, Any]) -> Prepared:
        only(payload, ("texts",))
        texts = payload.get("texts")
        if not isinstance(texts, list):
            raise ApiError(400, "bad_request", 'give "texts": a list of strings')
        checked = self._texts(texts)
        return Prepared(checked, checked)

    def inputs_of(self, batch: list[Prepared]) -> Tensor:
        with self._tokenizer:
            return self.inputs.featurize([text for p in batch for text in p.examples])
