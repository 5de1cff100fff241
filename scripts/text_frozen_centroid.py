"""Nearest class mean on a recipe's frozen sentence embeddings, with no meta-training: ProtoNet over the identity,
on the recipe's test classes and test protocols (the "no meta-training" rows of docs/results.md, Few-shot text).

    POLYSKILL_DATA=../shared/data .venv/bin/python scripts/text_frozen_centroid.py huffpost-baseline fewrel-baseline

Each recipe must use a frozen sentence encoder (`model.backbone: sentence`, `finetune: none`); its embeddings come
from the same on-disk cache its runs use.
"""

from __future__ import annotations

import sys

from polyskill.errors import PolyskillError
from polyskill.meta import PrototypicalNetworks
from polyskill.nn.encoder_network import EncoderNetwork
from polyskill.recipes import kind_of, load
from polyskill.recipes.kinds.base import EvalRequest
from polyskill.recipes.kinds.fewshot import input_shape


def main(names: list[str]) -> None:
    for name in names:
        recipe = load(name)
        if getattr(recipe.model, "frozen", False) is not True:
            sys.exit(f"{name}: needs a frozen sentence encoder (model.backbone sentence, model.finetune none)")
        algo = PrototypicalNetworks(EncoderNetwork(None, input_shape(recipe)[0]))
        for protocol in kind_of(recipe).test_protocols(recipe, EvalRequest()):
            print(f"{name} nearest class mean, no meta-training: {protocol.evaluate(algo)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    try:
        main(sys.argv[1:])
    except PolyskillError as exc:
        sys.exit(f"error: {exc}")
