"""The sinusoid regression report: MAML against the pretrained baseline, a table and a plot of adapted curves.

    .venv/bin/python scripts/sinusoid_report.py runs/sinusoid-maml runs/sinusoid-pretrained --png docs/sinusoid.png

Both runs come from `polyskill train sinusoid-maml` and `polyskill train sinusoid-pretrained`. The table lists
the query MSE (95% CI) that evaluation stored in each run's summary.json; the plot shows, for a few test tasks,
the true function, the K support points, and each model's prediction before adaptation and after 1 and 10
gradient steps. The plot is drawn with Pillow (no plotting library needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from polyskill.data.episodes import Support
from polyskill.data.sinusoid import SinusoidTasks
from polyskill.recipes.runner import trained_model
from polyskill.train.checkpoint import read_json

COLOURS = {"true": (0, 0, 0), 0: (150, 150, 150), 1: (31, 119, 180), 10: (214, 39, 40), "points": (44, 160, 44)}


def load_model(run: Path):
    recipe, algo = trained_model(run)
    return recipe, algo.eval()


def curves(
    algo, support_x: torch.Tensor, support_y: torch.Tensor, grid: torch.Tensor, steps: list[int]
) -> dict[int, torch.Tensor]:
    """Predictions on `grid` after each number of adaptation steps."""
    support = Support(support_x, support_y, 1)
    return {k: algo.adapt(support, steps=k)(grid).reshape(-1) for k in steps}


def draw_panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    series: dict,
    points: tuple[torch.Tensor, torch.Tensor],
    grid: torch.Tensor,
    y_range: tuple[float, float],
) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((left + 6, top + 4), title, fill=(0, 0, 0))
    x_lo, x_hi = float(grid.min()), float(grid.max())
    y_lo, y_hi = y_range

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x_lo) / (x_hi - x_lo) * (right - left),
            bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top),
        )

    draw.line([at(x_lo, 0), at(x_hi, 0)], fill=(220, 220, 220))
    for key, values in series.items():
        coords = [at(float(x), max(y_lo, min(y_hi, float(y)))) for x, y in zip(grid, values, strict=True)]
        draw.line(coords, fill=COLOURS[key], width=3 if key == "true" else 2)
    for x, y in zip(*points, strict=True):
        cx, cy = at(float(x), float(y))
        draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=COLOURS["points"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("maml", type=Path)
    parser.add_argument("pretrained", type=Path)
    parser.add_argument("--png", type=Path, default=Path("docs/sinusoid.png"))
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    models = {"MAML": load_model(args.maml), "pretrained": load_model(args.pretrained)}

    print("| model | K | steps | query MSE (95% CI) |")
    print("|---|---|---|---|")
    for name, run in (("MAML", args.maml), ("pretrained", args.pretrained)):
        for r in read_json(run / "summary.json").get("test", []):
            print(f"| {name} | {r['shot']} | {r['steps']} | {r['mse']:.3f} +- {r['ci95']:.3f} |")

    recipe = models["MAML"][0]
    tasks = SinusoidTasks(recipe.episodes.shot, 0, seed=recipe.eval.seed + 7)
    grid = torch.linspace(-5, 5, 200).unsqueeze(-1)
    width, height, pad = 420, 260, 12
    image = Image.new("RGB", (pad + 2 * (width + pad), pad + args.tasks * (height + pad) + 24), "white")
    draw = ImageDraw.Draw(image)
    for t in range(args.tasks):
        g = torch.Generator().manual_seed(1000 + t)
        amplitude, phase = tasks.draw_functions(1, g)
        sx = tasks._uniform((recipe.episodes.shot, 1), tasks.x_range, g)
        sy = (amplitude[0] * torch.sin(sx - phase[0])).squeeze(-1)
        truth = (amplitude[0] * torch.sin(grid - phase[0])).squeeze(-1)
        bound = max(5.5, float(amplitude) + 0.5)
        for col, (name, (_, algo)) in enumerate(models.items()):
            predicted = curves(algo, sx, sy, grid, [0, 1, 10])
            box = (
                pad + col * (width + pad),
                pad + t * (height + pad),
                pad + col * (width + pad) + width,
                pad + t * (height + pad) + height,
            )
            draw_panel(
                draw,
                box,
                f"{name}, task {t + 1}: A={float(amplitude):.2f}, phase={float(phase):.2f}",
                {"true": truth, **predicted},
                (sx.squeeze(-1), sy),
                grid.squeeze(-1),
                (-bound, bound),
            )
    legend = "black: true   grey: before adaptation   blue: 1 step   red: 10 steps   green: the K support points"
    draw.text((pad, image.height - 20), legend, fill=(0, 0, 0))
    args.png.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.png)
    print(f"plot written to {args.png}")


if __name__ == "__main__":
    main()
