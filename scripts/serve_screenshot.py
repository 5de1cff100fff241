"""The screenshot of the `polyskill serve` page in docs/serve-page.png: a small Omniglot run is trained (or --run
given), served, and the page is driven in headless Chromium through a session a user would have (three classes of
drawn shapes, a few images each, learned, then new drawings labelled).

    POLYSKILL_DATA=../shared/data .venv/bin/python scripts/serve_screenshot.py [--run RUN] [--out docs/serve-page.png]

Needs Chromium and its chromedriver (scripts/install_browser.sh) and selenium (the `test` extra).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the test support starts a real server, as the page tests do
os.environ.setdefault("POLYSKILL_DATA", str(REPO.parent / "shared" / "data"))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from serve_support import chromium, running, train_image_run  # noqa: E402
from test_adapt import draw  # noqa: E402

SHAPES = {"circle": 3, "cross": 3, "triangle": 3}
QUERIES = ("circle", "triangle", "cross", "circle")


def screen(profile: Path, size: tuple[int, int]) -> Any:
    """Headless Chromium whose page (not only its window) is `size`, at one device pixel per CSS pixel."""
    browser = chromium(profile, size, flags=("--hide-scrollbars", "--force-device-scale-factor=1"))
    metrics = {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return browser


def session(browser: webdriver.Chrome, url: str, images: Path) -> list[str]:
    """Name three classes, give each its drawings, learn, then label new drawings; the labels the page shows."""
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    wait.until(lambda b: b.find_element(By.ID, "model-select").is_enabled())
    Select(browser.find_element(By.ID, "model-select")).select_by_index(0)
    while len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=class-box]")) < len(SHAPES):
        browser.find_element(By.ID, "add-class").click()
    boxes = browser.find_elements(By.CSS_SELECTOR, "[data-testid=class-box]")
    for box, (shape, shots) in zip(boxes, SHAPES.items(), strict=True):
        name = box.find_element(By.CSS_SELECTOR, "[data-testid=class-name]")
        name.clear()
        name.send_keys(shape)
        files = [str(images / f"{shape}-{i}.png") for i in range(shots)]
        box.find_element(By.CSS_SELECTOR, "[data-testid=class-files]").send_keys("\n".join(files))
    browser.find_element(By.ID, "learn").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "task-status"), "Learned"))
    queries = [str(images / f"sketch-{i + 1}.png") for i in range(len(QUERIES))]
    browser.find_element(By.ID, "query-files").send_keys("\n".join(queries))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "[data-testid=result]")) == len(QUERIES))
    ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    return [
        row.get_attribute("data-label") or "" for row in browser.find_elements(By.CSS_SELECTOR, "[data-testid=result]")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a trained Omniglot run to serve (default: train a small one)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of the small run (default 300)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "serve-page.png")
    parser.add_argument("--size", default="1200x900", help="window size WIDTHxHEIGHT (default 1200x900)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="serve-screenshot-") as tmp:
        root = Path(tmp)
        run = args.run or train_image_run(root / "omniglot", steps=args.steps)
        rng = np.random.default_rng(0)
        images = root / "images"
        images.mkdir()
        for shape, shots in SHAPES.items():
            for i in range(shots):
                draw(shape, 96, rng).save(images / f"{shape}-{i}.png")
        for i, shape in enumerate(QUERIES):
            draw(shape, 96, rng).save(images / f"sketch-{i + 1}.png")
        with running([f"omniglot={run}"]) as (url, _):
            browser = screen(root / "profile", (width, height))
            try:
                labels = session(browser, url, images)
                errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
                if errors:
                    sys.exit("the page logged errors:\n" + "\n".join(errors))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(args.out))
            finally:
                browser.quit()
    print(f"saved {args.out} ({width}x{height}); queries {', '.join(QUERIES)} labelled {', '.join(labels)}")


if __name__ == "__main__":
    main()
