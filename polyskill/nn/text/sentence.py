"""A pretrained sentence-transformers encoder as a backbone: frozen (embeddings cached once), its last layers
fine-tuned, or all of it. sentence-transformers is the optional `polyskill[text]` extra, imported on use."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from .models import resolve_encoder

FINETUNE = ("none", "top", "all")
INSTALL_HINT = "needs `pip install polyskill[text]`"


def _sentence_transformers() -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise ConfigError(f"a pretrained sentence encoder {INSTALL_HINT}") from None
    return sentence_transformers


def _quiet_loader() -> None:
    """No progress bar or advice from transformers while a model loads: a run's output is polyskill's own."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _looks_like_path(model: str) -> bool:
    return Path(model).expanduser().exists() or model.startswith(("/", "./", "../", "~", "\\")) or ":\\" in model


def load_sentence_transformer(model: str) -> Any:
    """`sentence_transformers.SentenceTransformer(model)` on the CPU (a shipped model's directory for its hub name,
    see `resolve_encoder`), or one ConfigError saying how `model` was taken (a local directory or a hub name) and
    what to do about it."""
    st = _sentence_transformers()
    model = resolve_encoder(model)
    if _looks_like_path(model):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"sentence encoder {model!r}: taken as a local directory, but there is no directory there"
            )
        how, name = "taken as a local directory", str(path)
    else:
        how, name = (
            "taken as a model name on the Hugging Face hub; offline machines need a local model directory",
            model,
        )
    _quiet_loader()
    try:
        return st.SentenceTransformer(name, device="cpu")
    except Exception as exc:  # a third-party loader: missing files, bad config, no network, ... all mean "cannot load"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"cannot load sentence encoder {model!r} ({how}): {first}") from None


def _under_torch_func() -> bool:
    """Whether a torch.func transform (vmap, grad) is running: there a value cannot be read out of the data.
    torch has no public test for it; a build without this private one is taken as not transforming."""
    return bool(getattr(torch._C, "_are_functorch_transforms_active", lambda: False)())


class SentenceTokenizer:
    """The model's own tokenizer as texts -> LongTensor [n, 2, max_length] (ids and attention mask stacked)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Texts -> [n, 2, max_length]: token ids and attention mask, padded to max_length and truncated."""
        if not texts:
            return torch.zeros(0, 2, self.max_length, dtype=torch.long)
        enc = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return torch.stack([enc["input_ids"], enc["attention_mask"]], 1).long()

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts with the special tokens, untruncated, for "text over the encoder's length" checks."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]]


def transformer_layers(model: nn.Module) -> nn.ModuleList | None:
    """The model's transformer layers: its longest nn.ModuleList of blocks of one type and parameter shapes
    (BERT, MiniLM, MPNet, RoBERTa, DistilBERT, ... all keep them so), or None."""

    def signature(block: nn.Module) -> tuple:
        return type(block), tuple((n, tuple(p.shape)) for n, p in block.named_parameters())

    best: nn.ModuleList | None = None
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) <= (0 if best is None else len(best)):
            continue
        if len({signature(block) for block in module}) == 1:
            best = module
    return best


class SentenceEncoder(nn.Module):
    """A pretrained sentence-transformers model as a Backbone: [N, 2, L] (ids, attention mask) -> [N, D], the
    model's own sentence embedding (its pooling and normalisation).

    `model` is a hub name (needs internet) or a local model directory. `finetune`: "none" freezes everything,
    "top" trains the last `top_layers` transformer layers and whatever runs after them (pooler, dense layers),
    "all" trains everything. Frozen layers stay in eval mode (no dropout) whatever `train()` is called with.
    """

    def __init__(self, model: str, finetune: str = "none", top_layers: int = 2, max_length: int = 128) -> None:
        super().__init__()
        if finetune not in FINETUNE:
            raise ConfigError(f"finetune must be one of {', '.join(FINETUNE)}, got {finetune!r}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model = load_sentence_transformer(model)
        limit = getattr(self.model, "max_seq_length", None)
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length {max_length} is over the encoder's maximum sequence length {limit}")
        self.name, self.finetune, self.top_layers, self.max_length = model, finetune, top_layers, max_length
        self.tokenizer = SentenceTokenizer(self.model.tokenizer, max_length)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.embedding_dim: int = int(dim())
        self._trainable_modules: list[nn.Module] = []
        if finetune == "none":
            self.model.requires_grad_(False)
        elif finetune == "top":
            self._trainable_modules = self._top_modules(top_layers)
            self.model.requires_grad_(False)
            for module in self._trainable_modules:
                module.requires_grad_(True)
        self.train()

    def _top_modules(self, top_layers: int) -> list[nn.Module]:
        """The last `top_layers` transformer layers and every module first run after them (found by running the
        model once on a short text with hooks, so a pooler or dense head counts whatever its name)."""
        layers = transformer_layers(self.model)
        if layers is None:
            raise ConfigError(f"finetune 'top' needs a model with a list of transformer layers; {self.name!r} has none")
        if not 1 <= top_layers <= len(layers):
            raise ConfigError(f"top_layers must be between 1 and {len(layers)} (the model's layers), got {top_layers}")
        first_call: dict[nn.Module, int] = {}
        end_of_layers: list[int] = []

        def note(module: nn.Module, _: Any) -> None:  # a pre-hook must return None, or it replaces the inputs
            first_call.setdefault(module, len(first_call))

        handles = [m.register_forward_pre_hook(note) for m in self.model.modules()]
        handles.append(layers[-1].register_forward_hook(lambda *_: end_of_layers.append(len(first_call))))
        try:
            with torch.no_grad():
                self.forward(self.tokenizer(["a"]))
        finally:
            for handle in handles:
                handle.remove()
        after = [m for m, order in first_call.items() if end_of_layers and order >= end_of_layers[0]]
        return list(layers[len(layers) - top_layers :]) + after

    def train(self, mode: bool = True) -> SentenceEncoder:
        """Train or eval mode for the trainable parts; the frozen ones always stay in eval mode."""
        super().train(mode)
        if self.finetune != "all":
            self.model.eval()
            for module in self._trainable_modules:
                module.train(mode)
        return self

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Texts -> LongTensor [n, 2, max_length]: ids and attention mask (the model's tokenizer)."""
        return self.tokenizer(texts)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts with special tokens, untruncated."""
        return self.tokenizer.lengths(texts)

    def forward(self, x: Tensor) -> Tensor:
        """[N, 2, L] ids and attention mask -> [N, D] sentence embeddings."""
        ids, mask = x[:, 0], x[:, 1]
        if not _under_torch_func() and ids.shape[0] > 0:
            keep = max(int(mask.sum(1).max()), 1)  # padding past the longest text changes nothing: skip it
            ids, mask = ids[:, :keep], mask[:, :keep]
        return self.model({"input_ids": ids, "attention_mask": mask})["sentence_embedding"]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """Texts -> FloatTensor [n, D] on the CPU, in eval mode without gradients; batched by length for speed,
        returned in input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.zeros(len(texts), self.embedding_dim)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    z = self.forward(self.tokenize([texts[i] for i in rows]).to(device))
                    out[torch.tensor(rows)] = z.float().cpu()
        finally:
            self.train(was_training)
        return out

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 of everything that decides the embeddings (weights, vocabulary, modules' configuration,
        max_length), computed once: equal digests, equal embeddings. Weights changed later are not seen."""
        h = hashlib.sha256()
        for name, tensor in self.model.state_dict().items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            h.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
            h.update(memoryview(flat.view(torch.uint8).numpy()))
        tok = self.model.tokenizer
        vocab = sorted(tok.get_vocab().items())
        h.update(json.dumps([type(tok).__name__, getattr(tok, "do_lower_case", None), vocab]).encode())
        h.update(f"{self.model}|max_length={self.max_length}".encode())
        return h.hexdigest()
