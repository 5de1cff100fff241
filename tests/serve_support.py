"""Running a real `polyskill serve` application for tests: uvicorn on a free loopback port in a thread, torn down
after the `with`; and the small runs the serve tests teach tasks to."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from polyskill.serve import ServeConfig, create_app, load_models
from polyskill.serve.server import listen, url_of


@contextmanager
def running(runs: list[str], config: ServeConfig | None = None) -> Iterator[tuple[str, object]]:
    """(base URL ending in '/', the app) of a server on 127.0.0.1 serving `runs` (`RUN` or `NAME=RUN`)."""
    config = config or ServeConfig()
    app = create_app(load_models(runs, config), config)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock), app
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


#: headless Debian Chromium offline: no sandbox (root in a container), and none of the calls home it makes by default
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def chromium(profile: Path, size: tuple[int, int] = (1200, 900), flags: tuple[str, ...] = ()) -> Any:
    """A selenium driver of headless Chromium with a fresh profile in `profile`, a window of `size`, and its
    console log readable (`get_log("browser")`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def train_image_run(out: Path, algo: str = "protonet", steps: int = 5) -> Path:
    """A small Omniglot run (ProtoNet, or MAML 3-way) trained for a few steps: enough to serve, not to be good."""
    from polyskill.recipes import load
    from polyskill.recipes.runner import train_run

    if algo == "maml":
        overrides = ["train.steps=1", "model.hidden=8", "episodes.way=3", "train.meta_batch=1"]
    else:
        overrides = [f"train.steps={steps}", "model.hidden=16", "episodes.way=5", "episodes.query=2"]
    recipe = load(f"omniglot-{algo}", [*overrides, "data.train=vinyals/val", "data.val=null", "train.log_every=1000"])
    train_run(recipe, out, progress=False, evaluate=False, echo=lambda _: None)
    return out


def train_text_run(out: Path, steps: int = 2) -> Path:
    """ProtoNet over a text CNN on hashed words, meta-trained for a few steps on CLINC150's training intents."""
    from polyskill.recipes import load_config
    from polyskill.recipes.runner import train_run

    recipe = load_config(
        {
            "kind": "fewshot",
            "name": "clinc-textcnn",
            "data": {"dataset": "clinc150", "train": "train", "val": None, "test": "test"},
            "model": {"backbone": "textcnn", "vocab_size": 4096, "max_length": 24, "embed_dim": 16, "filters": 8},
            "algo": {"name": "protonet"},
            "episodes": {"way": 5, "shot": 2, "query": 3},
            "train": {"steps": steps, "meta_batch": 2, "precision": "fp32", "log_every": 1000},
        }
    )
    train_run(recipe, out, progress=False, evaluate=False, echo=lambda _: None)
    return out
