"""`polyskill serve` over real HTTP: a uvicorn server on a free loopback port, talked to with httpx. Tasks taught
and predicted over the API give what FewShotClassifier gives on the same examples; every limit and malformed
request is a 4xx with a JSON reason."""

from __future__ import annotations

import concurrent.futures
import io
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_support import running
from test_adapt import SHAPES, draw

from polyskill.classifier import AdaptedTask, FewShotClassifier
from polyskill.cli import main
from polyskill.client import ServeClient, ServeError
from polyskill.data.text_sets import text_set
from polyskill.errors import ClassifierError
from polyskill.serve import Batching, ServeConfig, ServeLimits
from polyskill.serve.security import check_bind, is_loopback, read_api_key
from polyskill.serve.tasks import TaskStore


@pytest.fixture(scope="module")
def runs(serve_runs) -> dict[str, Path]:
    return serve_runs


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def shapes(per_class: int, seed: int, classes: tuple[str, ...] = SHAPES) -> tuple[list[Image.Image], list[str]]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for shape in classes:
        for _ in range(per_class):
            images.append(draw(shape, int(rng.integers(40, 100)), rng))
            labels.append(shape)
    return images, labels


def image_task(url: str, images, labels, model: str | None = "shapes", **kwargs) -> httpx.Response:
    files = [("images", (f"{i}.png", png(im), "image/png")) for i, im in enumerate(images)]
    data = {"labels": labels, **({"model": model} if model else {})}
    return httpx.post(url + "v1/tasks", files=files, data=data, **kwargs)


def image_predict(url: str, task_id: str, images) -> httpx.Response:
    files = [("images", (f"q{i}.png", png(im), "image/png")) for i, im in enumerate(images)]
    return httpx.post(f"{url}v1/tasks/{task_id}/predict", files=files)


INTENTS = ("transfer", "balance", "pin_change", "freeze_account")


@pytest.fixture(scope="module")
def sentences() -> tuple[list[str], list[str], list[str]]:
    """3 support sentences of each of 4 CLINC150 test intents and 2 queries of each."""
    classes = text_set("clinc150", "full-test")
    texts, labels, queries = [], [], []
    for intent in INTENTS:
        examples = classes.texts[classes.names.index(intent)]
        texts += examples[:3]
        labels += [intent] * 3
        queries += examples[3:5]
    return texts, labels, queries


@pytest.fixture(scope="module")
def server(runs):
    config = ServeConfig(batching=Batching(window_s=0.2, max_queries=64))
    with running([str(runs["shapes"]), str(runs["maml"]), str(runs["intents"])], config) as (url, app):
        yield url, app


def error(response: httpx.Response, status: int, code: str) -> str:
    """The message of a JSON error answer, after checking its status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    return body["error"]["message"]


# -- what the service answers -------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["shapes", "maml"])
def test_an_image_task_predicts_what_the_classifier_predicts(server, runs, model):
    """ProtoNet (one batched embedding pass) and MAML (each request alone: transductive batch norm)."""
    url, _ = server
    classes = SHAPES if model == "shapes" else SHAPES[:3]
    support, labels = shapes(3, seed=1, classes=classes)
    queries, _ = shapes(2, seed=2, classes=classes)
    created = image_task(url, support, labels, model)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["classes"] == sorted(classes) and task["examples"] == len(support) and task["model"] == model
    answer = image_predict(url, task["task_id"], queries)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    clf = FewShotClassifier.from_run(runs[model]).fit(support, labels)
    expected = clf.predict_proba(queries)
    probabilities = np.array([p["probabilities"] for p in got["predictions"]])
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    assert [p["label"] for p in got["predictions"]] == list(clf.predict(queries))
    assert [p["name"] for p in got["predictions"]] == [f"q{i}.png" for i in range(len(queries))]
    assert got["classes"] == task["classes"]


def test_a_prediction_the_learner_refuses_is_a_422_with_its_reason(server, monkeypatch):
    """A learner's own refusal of the queries (PT-MAP given fewer queries than classes) is the client's to fix."""
    url, _ = server
    support, labels = shapes(3, seed=1, classes=SHAPES[:3])
    created = image_task(url, support, labels, "maml")  # a predictor run per request, on all its queries
    assert created.status_code == 201, created.text

    def refuse(*_):
        raise ClassifierError("needs at least as many queries as classes at once")

    monkeypatch.setattr(FewShotClassifier, "task_probabilities", refuse)
    reason = error(image_predict(url, created.json()["task_id"], support[:1]), 422, "bad_examples")
    assert "as many queries as classes" in reason


def test_a_text_task_predicts_what_the_classifier_predicts(server, runs, sentences):
    url, _ = server
    texts, labels, queries = sentences
    examples = [{"text": t, "label": label} for t, label in zip(texts, labels, strict=True)]
    created = httpx.post(url + "v1/tasks", json={"model": "intents", "examples": examples})
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]
    answer = httpx.post(f"{url}v1/tasks/{task_id}/predict", json={"texts": queries})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    clf = FewShotClassifier.from_run(runs["intents"]).fit(texts, labels)
    np.testing.assert_allclose([p["probabilities"] for p in predictions], clf.predict_proba(queries), atol=1e-5)
    assert [p["label"] for p in predictions] == list(clf.predict(queries))
    assert [p["name"] for p in predictions] == queries


def test_concurrent_predictions_are_batched_and_each_gets_its_own_answer(server, runs):
    """16 requests on two tasks sent at once, gathered within the 200 ms window: fewer model batches than requests,
    and each answer equals the classifier's on that request's queries alone."""
    url, app = server
    tasks, classifiers = [], []
    for seed in (3, 4):
        support, labels = shapes(2, seed=seed)
        tasks.append(image_task(url, support, labels).json()["task_id"])
        classifiers.append(FewShotClassifier.from_run(runs["shapes"]).fit(support, labels))
    queries = [shapes(1, seed=10 + i)[0][: 1 + i % 4] for i in range(16)]
    worker = app.state.service.workers["shapes"]
    before = worker.batches
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: image_predict(url, tasks[i % 2], queries[i]).json(), range(16)))
    batches = worker.batches - before
    assert batches < 16, f"16 concurrent requests ran in {batches} batches"
    for i, answer in enumerate(answers):
        expected = classifiers[i % 2].predict_proba(queries[i])
        np.testing.assert_allclose([p["probabilities"] for p in answer["predictions"]], expected, atol=1e-5)


def test_models_health_task_info_delete_and_the_pages(server):
    url, _ = server
    models = {m["name"]: m for m in httpx.get(url + "v1/models").json()["models"]}
    assert models["shapes"]["modality"] == "image" and models["shapes"]["input"] == {
        "channels": 1,
        "height": 28,
        "width": 28,
    }
    assert models["maml"]["max_classes"] == 3  # MAML's 3-way output layer
    assert models["intents"]["modality"] == "text" and models["intents"]["input"]["max_tokens"] == 24
    support, labels = shapes(1, seed=5, classes=SHAPES[:2])
    task_id = image_task(url, support, labels).json()["task_id"]
    info = httpx.get(f"{url}v1/tasks/{task_id}").json()
    assert info["classes"] == sorted(SHAPES[:2]) and info["examples"] == 2 and 0 < info["ttl_s"] <= 3600
    assert httpx.get(url + "v1/health").json()["status"] == "ok"
    assert httpx.delete(f"{url}v1/tasks/{task_id}").status_code == 204
    error(httpx.delete(f"{url}v1/tasks/{task_id}"), 404, "unknown_task")
    error(image_predict(url, task_id, support), 404, "unknown_task")
    page = httpx.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    docs = httpx.get(url + "docs")
    assert docs.status_code == 200 and "cdn." not in docs.text  # the API docs page is served without a CDN
    schema = httpx.get(url + "openapi.json").json()
    assert {"/v1/tasks", "/v1/tasks/{task_id}/predict", "/v1/models"} <= set(schema["paths"])


# -- limits and malformed requests ---------------------------------------------------------------------------
TIGHT = ServeLimits(
    max_request_bytes=150_000,
    max_images=4,
    max_texts=4,
    max_text_chars=80,
    max_pixels=100 * 100,
    max_classes=3,
    max_tasks=2,
    task_ttl_s=3600,
)


@pytest.fixture(scope="module")
def tight(runs):
    with running([str(runs["shapes"]), str(runs["intents"])], ServeConfig(limits=TIGHT)) as (url, _):
        yield url


def small(shape: str = "circle", size: int = 40) -> Image.Image:
    return draw(shape, size, np.random.default_rng(0))


def test_image_limits_are_4xx_with_a_reason(tight):
    url = tight
    two = [small("circle"), small("square")]
    error(image_task(url, [small()] * 5, ["a"] * 5), 422, "too_many_images")
    error(image_task(url, [small()] * 40, ["a"] * 40), 422, "too_many_images")  # far over: the same answer
    assert "at most 3" in error(
        image_task(url, [*two, small("cross"), small("triangle")], list("abcd")), 422, "too_many_classes"
    )
    error(image_task(url, two[:1] * 2, ["a", "a"]), 422, "too_few_classes")
    error(image_task(url, two, ["a"]), 422, "bad_label")
    error(image_task(url, two, ["a", " "]), 422, "bad_label")
    assert "120x120" in error(image_task(url, [small(size=120), small()], ["a", "b"]), 422, "image_too_large")
    files = [
        ("images", ("x.png", b"not an image at all", "image/png")),
        ("images", ("y.png", png(small()), "image/png")),
    ]
    message = error(
        httpx.post(url + "v1/tasks", files=files, data={"labels": ["a", "b"], "model": "shapes"}), 422, "bad_image"
    )
    assert "x.png" in message
    truncated = png(small())[:60]
    files = [("images", ("t.png", truncated, "image/png")), ("images", ("y.png", png(small()), "image/png"))]
    error(httpx.post(url + "v1/tasks", files=files, data={"labels": ["a", "b"], "model": "shapes"}), 422, "bad_image")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"  # EPS would run Ghostscript: refused
    files = [("images", ("e.eps", eps, "image/eps")), ("images", ("y.png", png(small()), "image/png"))]
    error(httpx.post(url + "v1/tasks", files=files, data={"labels": ["a", "b"], "model": "shapes"}), 422, "bad_image")
    fields_only = [("model", (None, "shapes")), ("labels", (None, "a"))]
    error(httpx.post(url + "v1/tasks", files=fields_only), 422, "bad_examples")
    urlencoded = httpx.post(url + "v1/tasks", data={"labels": ["a"], "model": "shapes"})
    error(urlencoded, 415, "unsupported_media_type")
    files = [("other", ("a.png", png(small()), "image/png"))]
    assert "'other'" in error(httpx.post(url + "v1/tasks", files=files, data={"model": "shapes"}), 400, "bad_request")
    files = [("images", ("a.png", png(small()), "image/png"))]
    error(httpx.post(url + "v1/tasks", files=files, data={"model": "shapes", "label": "a"}), 400, "bad_request")
    error(image_task(url, two, ["a", "b"], model="nope"), 404, "unknown_model")
    error(image_task(url, two, ["a", "b"], model=None), 400, "bad_request")  # two models served: which?


def test_request_size_is_capped_declared_or_streamed(tight):
    url = tight
    big = [("images", ("big.png", b"\0" * 200_000, "image/png"))]
    error(httpx.post(url + "v1/tasks", files=big, data={"labels": ["a"]}), 413, "request_too_large")

    def chunks():
        for _ in range(40):
            yield b"x" * 10_000

    streamed = httpx.post(url + "v1/tasks", content=chunks(), headers={"content-type": "application/json"})
    error(streamed, 413, "request_too_large")  # chunked: no Content-Length to check up front


def test_text_limits_and_malformed_json_are_4xx_with_a_reason(tight):
    url = tight
    texts = ["send money to my sister", "move cash to savings", "what is my balance", "how much is left"]
    examples = [{"text": t, "label": label} for t, label in zip(texts, ["a", "a", "b", "b"], strict=True)]

    def task(body=None, **kwargs):
        return httpx.post(url + "v1/tasks", json=body, **kwargs)

    error(task({"model": "intents", "examples": examples * 2}), 422, "too_many_texts")
    long = [{"text": "word " * 30, "label": "a"}, examples[2]]
    assert "at most 80" in error(task({"model": "intents", "examples": long}), 422, "text_too_long")
    window = [{"text": " ".join(["w"] * 30), "label": "a"}, examples[2]]  # 60 characters, over 24 tokens
    assert "24 tokens" in error(task({"model": "intents", "examples": window}), 422, "text_too_long")
    error(task({"model": "intents", "examples": [{"text": "  ", "label": "a"}, examples[2]]}), 422, "bad_examples")
    error(task({"model": "intents", "examples": [{"text": 3, "label": "a"}, examples[2]]}), 400, "bad_request")
    error(task({"model": "intents", "examples": [{"text": "hi"}]}), 400, "bad_request")
    error(task({"model": "intents", "examples": "hello"}), 400, "bad_request")
    assert "'modle'" in error(task({"modle": "intents", "examples": examples}), 400, "bad_request")
    extra = [{"text": "hi", "label": "a", "weight": 2}, examples[2]]
    error(task({"model": "intents", "examples": extra}), 400, "bad_request")
    error(task({"model": "intents", "examples": [{"text": "hi", "label": 7}, examples[2]]}), 422, "bad_label")
    error(task([1, 2]), 400, "bad_json")
    error(httpx.post(url + "v1/tasks", content=b"{bad", headers={"content-type": "application/json"}), 400, "bad_json")
    error(
        httpx.post(url + "v1/tasks", content=b"\xff\xfe", headers={"content-type": "application/json"}), 400, "bad_json"
    )
    deep = b"[" * 60_000 + b"]" * 60_000
    error(httpx.post(url + "v1/tasks", content=deep, headers={"content-type": "application/json"}), 400, "bad_json")
    error(
        httpx.post(url + "v1/tasks", content=b"hi", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    error(
        httpx.post(url + "v1/tasks", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}),
        400,
        "bad_form",
    )
    two = [small("circle"), small("square")]
    error(image_task(url, two, ["a", "b"], model="intents"), 415, "unsupported_media_type")
    created = task({"model": "intents", "examples": examples})
    assert created.status_code == 201
    task_id = created.json()["task_id"]
    predict = f"{url}v1/tasks/{task_id}/predict"
    error(httpx.post(predict, json={"texts": "one"}), 400, "bad_request")
    error(httpx.post(predict, json={"texts": []}), 422, "bad_examples")
    error(httpx.post(predict, json={"texts": ["hi"], "model": "intents"}), 400, "bad_request")
    error(httpx.post(predict, json={"texts": ["a"] * 5}), 422, "too_many_texts")
    error(httpx.post(predict, files=[("images", ("a.png", png(small()), "image/png"))]), 415, "unsupported_media_type")
    error(httpx.get(url + "v1/tasks"), 405, "method_not_allowed")
    error(httpx.get(url + "v1/nothing"), 404, "not_found")


def test_the_least_recently_used_task_is_dropped_beyond_the_limit(tight):
    url = tight
    two = [small("circle"), small("square")]
    ids = [image_task(url, two, ["a", "b"]).json()["task_id"] for _ in range(2)]
    assert image_predict(url, ids[0], two[:1]).status_code == 200  # ids[0] is now the most recently used
    third = image_task(url, two, ["a", "b"]).json()["task_id"]
    error(image_predict(url, ids[1], two[:1]), 404, "unknown_task")
    assert image_predict(url, ids[0], two[:1]).status_code == 200
    assert image_predict(url, third, two[:1]).status_code == 200


def test_random_bodies_never_get_a_500(tight):
    """Bytes, truncated forms and odd JSON at every endpoint: always a 4xx JSON error, never a 500."""
    url = tight
    rng = np.random.default_rng(0)
    bodies = [bytes(rng.integers(0, 256, int(n), dtype=np.uint8)) for n in rng.integers(0, 3000, 12)]
    form = httpx.Request("POST", url, files=[("images", ("a.png", png(small()), "image/png"))], data={"labels": "a"})
    raw_form = form.read()
    bodies += [raw_form[: len(raw_form) // 2], b'{"examples": null}', b'{"texts": [null]}', b"null", b'"x"']
    for path in ("v1/tasks", "v1/tasks/abc/predict"):
        for body in bodies:
            for kind in ("application/json", form.headers["content-type"], "multipart/form-data; boundary=zz"):
                answer = httpx.post(url + path, content=body, headers={"content-type": kind})
                assert 400 <= answer.status_code < 500, (path, kind, answer.status_code, answer.text)
                assert set(answer.json()["error"]) == {"code", "message"}


# -- who may talk to it --------------------------------------------------------------------------------------
def test_the_api_key_is_required_when_set_and_hosts_are_checked_on_loopback(runs, tmp_path):
    key = "k" * 8 + "-0123456789abcdef"
    config = ServeConfig(api_key=key, allowed_hosts=("localhost", "127.0.0.1", "::1"))
    with running([str(runs["shapes"])], config) as (url, _):
        error(httpx.get(url + "v1/models"), 401, "unauthorized")
        error(httpx.get(url + "v1/models", headers={"Authorization": "Bearer " + key[:-1] + "x"}), 401, "unauthorized")
        assert httpx.get(url + "v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.get(url + "v1/models", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(url + "v1/health").status_code == 200  # for load balancers' checks
        two = [small("circle"), small("square")]
        error(image_task(url, two, ["a", "b"], model=None), 401, "unauthorized")
        error(httpx.get(url + "v1/health", headers={"Host": "evil.example"}), 400, "bad_host")
        assert httpx.get(url + "v1/health", headers={"Host": "localhost:1234"}).status_code == 200


def test_binding_beyond_loopback_needs_a_key_and_the_key_file_is_checked(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.3.4.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("example.com")
    with pytest.raises(Exception, match="--api-key-file"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "x" * 16)
    path = tmp_path / "key"
    for content, match in ((b"short\n", "at least 16"), (b"", "at least 16"), (b"\xff" * 20, "ASCII")):
        path.write_bytes(content)
        with pytest.raises(Exception, match=match):
            read_api_key(path)
    path.write_text("  0123456789abcdef0123  \nignored\n")
    assert read_api_key(path) == "0123456789abcdef0123"
    with pytest.raises(Exception, match="cannot read"):
        read_api_key(tmp_path / "missing")


def test_the_command_refuses_bad_binds_in_one_line(runs, capsys, tmp_path):
    assert main(["serve", str(runs["shapes"]), "--host", "0.0.0.0"]) == 2
    assert "--api-key-file" in capsys.readouterr().err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        assert main(["serve", str(runs["shapes"]), "--port", str(taken.getsockname()[1])]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("polyskill: error: cannot listen on 127.0.0.1:") and "\n" not in err
    finally:
        taken.close()
    assert main(["serve", str(tmp_path / "nothing")]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert main(["serve", f"a={runs['shapes']}", f"a={runs['maml']}", "--port", "0"]) == 2
    assert "NAME=RUN" in capsys.readouterr().err


def test_the_command_serves_until_stopped(runs):
    """`polyskill serve` as a user starts it: the printed URL answers, and SIGTERM stops it cleanly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "polyskill.cli", "serve", f"shapes={runs['shapes']}", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("serving shapes (image, protonet) on http://127.0.0.1:"), line
        url = line.split(" on ")[1].split(" ")[0]
        assert httpx.get(url + "v1/health", timeout=10).json()["models"] == 1
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM), err  # uvicorn shuts down, then lets SIGTERM end the process
    assert "Traceback" not in err


def test_json_error_bodies_are_json_objects(server):
    url, _ = server
    body = httpx.get(url + "v1/nothing").text
    assert json.loads(body)["error"]["code"] == "not_found"


def test_the_standard_library_client_speaks_the_api(server, sentences, tmp_path):
    url, _ = server
    client = ServeClient(url)
    assert {m["name"] for m in client.models()} == {"shapes", "maml", "intents"}
    texts, labels, queries = sentences
    task = client.create_task(labels, texts=texts, model="intents")
    answer = client.predict(task["task_id"], texts=queries)
    direct = httpx.post(f"{url}v1/tasks/{task['task_id']}/predict", json={"texts": queries}).json()
    assert answer["predictions"] == direct["predictions"]
    support, image_labels = shapes(1, seed=7, classes=SHAPES[:2])
    (tmp_path / "a.png").write_bytes(png(support[0]))
    images = [tmp_path / "a.png", ("b.png", png(support[1]))]  # a path and (name, bytes)
    task = client.create_task(image_labels, images=images, model="shapes")
    assert task["classes"] == sorted(image_labels)
    assert [p["name"] for p in client.predict(task["task_id"], images=images)["predictions"]] == ["a.png", "b.png"]
    assert client.task(task["task_id"])["examples"] == 2
    client.delete_task(task["task_id"])
    with pytest.raises(ServeError) as refused:
        client.predict(task["task_id"], images=images)
    assert (refused.value.status, refused.value.code) == (404, "unknown_task")
    with pytest.raises(ServeError, match="cannot reach"):
        ServeClient("http://127.0.0.1:9", timeout=2).health()


def test_a_task_expires_its_ttl_after_its_last_use_and_ids_carry_the_prefix():
    now = [0.0]
    store = TaskStore(max_tasks=10, ttl_s=60, prefix="w2-", clock=lambda: now[0])
    task = AdaptedTask(lambda x: x, np.array(["a", "b"]))
    first, second = store.add("m", task, 2), store.add("m", task, 2)
    assert first.startswith("w2-") and len(first) > 20 and first != second
    now[0] = 50.0
    assert store.get(first) is not None  # used at 50: lives until 110
    now[0] = 100.0
    assert store.get(second) is None and store.get(first) is not None
    assert store.ttl_left(store.get(first)) == 60.0
    now[0] = 170.0
    assert len(store) == 0 and store.get(first) is None
