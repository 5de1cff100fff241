"""The page of `polyskill serve` in a real headless Chromium (Debian's, driven through chromedriver by selenium):
a user's session of choosing a model, naming classes, giving them images (file picker and drag-and-drop) or
sentences, learning and predicting shows the labels and probabilities FewShotClassifier gives on the same examples;
an API error is shown in the API's words; an API key is asked for when the server needs one. The page must log no
console error (its Content-Security-Policy forbids inline code, so a violation would show there)."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_support import CHROMEDRIVER, CHROMIUM, chromium, running

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
for _program, _package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
    if not _program.is_file():
        pytest.skip(
            f"{_program} is missing (Debian package {_package}): run scripts/install_browser.sh",
            allow_module_level=True,
        )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from test_adapt import draw  # noqa: E402

from polyskill.classifier import FewShotClassifier  # noqa: E402
from polyskill.data.text_sets import text_set  # noqa: E402
from polyskill.serve import ServeConfig  # noqa: E402

SHAPES = ("circle", "cross", "triangle")
INTENTS = ("transfer", "balance", "pin_change")
API_KEY = "page-test-key-0123456789"


@pytest.fixture(scope="module")
def runs(serve_runs) -> dict[str, Path]:
    return serve_runs


@pytest.fixture(scope="module")
def url(runs) -> Iterator[str]:
    with running([f"shapes={runs['shapes']}", f"intents={runs['intents']}"]) as (base, _):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the module, with a fresh profile and its console log readable."""
    profile = tempfile.mkdtemp(prefix="polyskill-chromium-")
    driver = chromium(Path(profile))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(browser: webdriver.Chrome, statuses: tuple[int, ...] = ()) -> list[str]:
    """The console's errors since last asked, but for the failed requests of the expected HTTP `statuses`."""
    expected = tuple(f"the server responded with a status of {s}" for s in statuses)
    return [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not any(x in e["message"] for x in expected)
    ]


def until(browser: webdriver.Chrome, condition, what: str):
    """Wait (10 s at most) for `condition(browser)` to be truthy, failing with the page's error area if not."""

    try:
        return WebDriverWait(browser, 10).until(condition)
    except TimeoutException:
        shown = browser.find_element(By.ID, "error").text
        pytest.fail(f"the page did not show {what}; its error area says: {shown!r}; console: {console_errors(browser)}")


def by_testid(root, testid: str) -> list[WebElement]:
    return root.find_elements(By.CSS_SELECTOR, f"[data-testid={testid}]")


def open_page(browser: webdriver.Chrome, url: str, model: str, classes: list[str]) -> list[WebElement]:
    """Load the page, choose `model`, and name one class box for each of `classes` (adding or removing boxes)."""
    browser.get(url)
    until(browser, lambda b: b.find_element(By.ID, "model-select").is_enabled(), "the served models")
    Select(browser.find_element(By.ID, "model-select")).select_by_value(model)
    until(browser, lambda b: b.find_element(By.ID, "model-info").get_attribute("data-model") == model, model)
    while len(by_testid(browser, "class-box")) < len(classes):
        browser.find_element(By.ID, "add-class").click()
    while len(by_testid(browser, "class-box")) > len(classes):
        by_testid(by_testid(browser, "class-box")[-1], "class-remove")[0].click()
    boxes = by_testid(browser, "class-box")
    for box, name in zip(boxes, classes, strict=True):
        field = by_testid(box, "class-name")[0]
        field.clear()
        field.send_keys(name)
    return boxes


def learn(browser: webdriver.Chrome) -> None:
    browser.find_element(By.ID, "learn").click()
    until(browser, lambda b: "Learned" in b.find_element(By.ID, "task-status").text, "a learned task")


def results(browser: webdriver.Chrome, count: int) -> list[tuple[str, list[float]]]:
    """(label shown, probabilities) of each result row, once `count` rows are shown."""
    until(browser, lambda b: len(by_testid(b, "result")) == count, f"{count} results")
    rows = []
    for row in by_testid(browser, "result"):
        label = by_testid(row, "result-label")[0].text
        assert label == row.get_attribute("data-label")
        assert by_testid(row, "result-query")[0].is_displayed()
        assert len(by_testid(row, "other-bar")) == len(json.loads(row.get_attribute("data-probabilities"))) - 1
        rows.append((label, json.loads(row.get_attribute("data-probabilities"))))
    return rows


def drawings(folder: Path, name: str, shapes: list[str], seed: int) -> list[Path]:
    """One PNG file of each shape of `shapes`, drawn at assorted sizes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    paths = []
    for i, shape in enumerate(shapes):
        path = folder / f"{name}{i}-{shape}.png"
        draw(shape, int(rng.integers(40, 100)), rng).save(path)
        paths.append(path)
    return paths


def drop_files(browser: webdriver.Chrome, zone: WebElement, paths: list[Path]) -> None:
    """Drop `paths` onto `zone` as a user dragging them from a file manager would."""
    files = [[p.name, base64.b64encode(p.read_bytes()).decode()] for p in paths]
    browser.execute_script(
        """const [zone, files] = arguments;
        const data = new DataTransfer();
        for (const [name, b64] of files) {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          data.items.add(new File([bytes], name, {type: "image/png"}));
        }
        for (const type of ["dragover", "drop"]) {
          zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        zone,
        files,
    )


def test_image_task_labels_queries_as_the_classifier_does(browser, url, runs, tmp_path):
    support = drawings(tmp_path, "support", [s for s in SHAPES for _ in range(2)], seed=0)
    labels = [s for s in SHAPES for _ in range(2)]
    queries = drawings(tmp_path, "query", [*SHAPES, *SHAPES], seed=1)

    boxes = open_page(browser, url, "shapes", list(SHAPES))
    facts = browser.find_element(By.ID, "model-info").text
    assert "image" in facts and "protonet" in facts and "2 to 50" in facts
    for box, shape in zip(boxes, SHAPES, strict=True):
        mine = [str(p) for p, label in zip(support, labels, strict=True) if label == shape]
        by_testid(box, "class-files")[0].send_keys("\n".join(mine))
        until(browser, lambda _, box=box: len(box.find_elements(By.CSS_SELECTOR, ".thumbs img")) == 2, "thumbnails")
    learn(browser)
    assert "3 classes from 6 examples" in browser.find_element(By.ID, "task-status").text
    drop_files(browser, browser.find_element(By.ID, "query-drop"), queries)  # predicted on drop
    shown = results(browser, len(queries))

    classifier = FewShotClassifier.from_run(runs["shapes"]).fit([str(p) for p in support], labels)
    expected = classifier.predict_proba([str(p) for p in queries])
    classes = list(classifier.fitted_classes)
    assert [label for label, _ in shown] == [classes[i] for i in expected.argmax(1)]
    np.testing.assert_allclose([p for _, p in shown], expected, atol=1e-5)

    first = by_testid(browser, "result")[0]
    browser.find_element(By.ID, "predict").click()  # the button predicts the same queries again
    until(browser, staleness_of(first), "new results")
    assert [p for _, p in results(browser, len(queries))] == [p for _, p in shown]
    assert browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert console_errors(browser) == []


def test_text_task_labels_sentences_as_the_classifier_does(browser, url, runs):
    clinc = text_set("clinc150", "full-test")
    examples = {intent: clinc.texts[clinc.names.index(intent)] for intent in INTENTS}
    support = {intent: texts[:3] for intent, texts in examples.items()}
    queries = [text for texts in examples.values() for text in texts[3:5]]

    boxes = open_page(browser, url, "intents", list(INTENTS))
    assert "text" in browser.find_element(By.ID, "model-info").text
    for box, intent in zip(boxes, INTENTS, strict=True):
        by_testid(box, "class-text")[0].send_keys("\n".join(support[intent]) + "\n\n")  # blank lines are ignored
    learn(browser)
    browser.find_element(By.ID, "query-text").send_keys("\n".join(queries))
    browser.find_element(By.ID, "predict").click()
    shown = results(browser, len(queries))
    assert [row.text for row in by_testid(browser, "result-query")] == queries

    texts = [text for intent in INTENTS for text in support[intent]]
    labels = [intent for intent in INTENTS for _ in support[intent]]
    classifier = FewShotClassifier.from_run(runs["intents"]).fit(texts, labels)
    expected = classifier.predict_proba(queries)
    classes = list(classifier.fitted_classes)
    assert [label for label, _ in shown] == [classes[i] for i in expected.argmax(1)]
    np.testing.assert_allclose([p for _, p in shown], expected, atol=1e-5)
    assert console_errors(browser) == []


def test_api_error_is_shown_in_the_api_words(browser, url, tmp_path):
    [image] = drawings(tmp_path, "one", ["circle"], seed=2)
    [box] = open_page(browser, url, "shapes", ["circle"])
    by_testid(box, "class-files")[0].send_keys(str(image))
    browser.find_element(By.ID, "learn").click()
    until(browser, lambda b: b.find_element(By.ID, "error").is_displayed(), "an error")

    answer = httpx.post(
        url + "v1/tasks",
        data={"model": "shapes", "labels": ["circle"]},
        files=[("images", (image.name, image.read_bytes(), "image/png"))],
    )
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert browser.find_element(By.ID, "error-message").text == message
    assert "too_few_classes" in browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "predict").get_attribute("disabled") is not None  # no task was learned
    assert console_errors(browser, statuses=(422,)) == []


def test_api_key_is_asked_for_and_sent(browser, runs, tmp_path):
    images = drawings(tmp_path, "key", ["circle", "cross"], seed=3)
    with running([f"shapes={runs['shapes']}"], ServeConfig(api_key=API_KEY)) as (base, _):
        browser.get(base)
        until(browser, lambda b: b.find_element(By.ID, "api-key").is_displayed(), "the API key field")
        assert "API key" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "api-key").send_keys(API_KEY + "\n")
        until(browser, lambda b: b.find_element(By.ID, "model-select").is_enabled(), "the served models")
        assert not browser.find_element(By.ID, "auth").is_displayed()
        assert browser.execute_script("return sessionStorage.getItem('polyskill-api-key')") == API_KEY
        boxes = open_page(browser, base, "shapes", ["circle", "cross"])  # reloaded: the key is kept for the tab
        for box, image in zip(boxes, images, strict=True):
            by_testid(box, "class-files")[0].send_keys(str(image))
        learn(browser)
    assert console_errors(browser, statuses=(401,)) == []
