"""A client of `polyskill serve` in the standard library only (urllib), so a program that only calls a server needs
nothing else installed:

    client = ServeClient("http://127.0.0.1:8000")
    task = client.create_task(texts=["I lost my card", "top up please"], labels=["lost_card", "top_up"])
    client.predict(task["task_id"], texts=["where is my card?"])["predictions"][0]["label"]

Images are paths or (file name, bytes) pairs. Every error the server answers is raised as ServeError with its
status, code and message.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

Image = str | os.PathLike | tuple[str, bytes]


class ServeError(Exception):
    """A request the server refused (or could not be reached: status 0, code `unreachable`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status, self.code, self.message = status, code, message


def _image(item: Image) -> tuple[str, bytes]:
    if isinstance(item, tuple):
        name, data = item
        return str(name), bytes(data)
    path = Path(item)
    return path.name, path.read_bytes()


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type, fields and files in the order given."""
    boundary = f"polyskill-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        parts.append(value.encode() + b"\r\n")
    for name, filename, data in files:
        safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts += [head.encode(), data, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ServeClient:
    """The API of one server at `url`, with its API key if it asks for one."""

    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url, self.api_key, self.timeout = url.rstrip("/") + "/", api_key, timeout

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", exc.reason if isinstance(exc.reason, str) else str(exc)
            raise ServeError(exc.code, code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServeError(0, "unreachable", f"cannot reach {self.url}: {reason}") from None
        return json.loads(raw) if raw else None

    def _json(self, method: str, path: str, value: Any) -> Any:
        return self._request(method, path, json.dumps(value).encode(), "application/json")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "v1/health")

    def models(self) -> list[dict[str, Any]]:
        """The served models (name, kind, modality, algorithm, input, max_classes)."""
        return self._request("GET", "v1/models")["models"]

    def create_task(
        self,
        labels: Sequence[str],
        texts: Sequence[str] | None = None,
        images: Sequence[Image] | None = None,
        model: str | None = None,
    ) -> dict[str, Any]:
        """Teach a task with labelled texts or images (one label each); its id, classes and time to live."""
        if (texts is None) == (images is None):
            raise ValueError("give either texts or images")
        if texts is not None:
            examples = [{"text": t, "label": label} for t, label in zip(texts, labels, strict=True)]
            return self._json("POST", "v1/tasks", {"examples": examples, **({"model": model} if model else {})})
        fields = ([("model", model)] if model else []) + [("labels", str(label)) for label in labels]
        files = [("images", *_image(item)) for item in images or ()]
        return self._request("POST", "v1/tasks", *_multipart(fields, files))

    def predict(
        self, task_id: str, texts: Sequence[str] | None = None, images: Sequence[Image] | None = None
    ) -> dict[str, Any]:
        """Each query's label, confidence and class probabilities under the task."""
        if (texts is None) == (images is None):
            raise ValueError("give either texts or images")
        path = f"v1/tasks/{quote(task_id, safe='')}/predict"
        if texts is not None:
            return self._json("POST", path, {"texts": list(texts)})
        return self._request("POST", path, *_multipart([], [("images", *_image(item)) for item in images or ()]))

    def task(self, task_id: str) -> dict[str, Any]:
        return self._request("GET", f"v1/tasks/{quote(task_id, safe='')}")

    def delete_task(self, task_id: str) -> None:
        self._request("DELETE", f"v1/tasks/{quote(task_id, safe='')}")
