"""The HTTP API of `polyskill serve` (see docs/serve.md): tasks are taught with a support set and then asked for
predictions. Requests are parsed here by hand, so every malformed one gets the service's own 4xx and JSON reason;
the examples are checked and decoded off the event loop and the model runs on its worker thread."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .._version import __version__
from ..errors import ClassifierError
from .config import ServeConfig
from .errors import ApiError, error_body
from .middleware import BodyLimit, HostCheck, SecurityHeaders
from .models import ServedModel
from .readers import Form, Prepared, only
from .schemas import (
    ERRORS,
    Health,
    ModelsAnswer,
    PredictAnswer,
    TaskAnswer,
    TaskCreated,
    image_queries_body,
    support_body,
    text_queries_body,
)
from .security import key_matches
from .tasks import Task, TaskStore
from .worker import ModelWorker

log = logging.getLogger("polyskill.serve")
STATIC = Path(__file__).parent / "static"
JSON_TYPE, FORM_TYPE = "application/json", "multipart/form-data"
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def _media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters (cut to 100 characters for messages)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()[:100]


async def _json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, or a 400 saying why not."""
    body = await request.body()
    try:
        value = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ApiError(400, "bad_json", "the body's JSON is nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, got a {type(value).__name__}")
    return value


async def _form(request: Request, max_files: int, max_bytes: int) -> Form:
    """The request's multipart body as fields and files, or a 400 / 422 saying why not."""
    # the parser's own part limits are set past anything the body limit lets through (a part takes at least its
    # boundary and headers, over 64 bytes), so the counts are judged here and by the reader, one way
    parts = max(max_files + 16, max_bytes // 64)
    try:
        form = await request.form(max_files=parts, max_fields=parts)
    except HTTPException as exc:
        raise ApiError(400, "bad_form", f"the multipart body cannot be read: {exc.detail}") from None
    except (ValueError, KeyError, AssertionError) as exc:
        raise ApiError(400, "bad_form", f"the multipart body cannot be read: {exc}") from None
    parsed = Form()
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                parsed.files.setdefault(key, []).append((value.filename or "", await value.read()))
            else:
                parsed.fields.setdefault(key, []).append(value)
    finally:
        await form.close()
    return parsed


def _shown(value: Any) -> str:
    """A value a client sent, quoted for a message and cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field(payload: dict[str, Any] | Form, name: str) -> Any:
    """A top-level field of a JSON object or a form (None when absent; a 400 when a form repeats it)."""
    if isinstance(payload, Form):
        values = payload.fields.get(name, [])
        if len(values) > 1:
            raise ApiError(400, "bad_form", f"the field {name!r} is given {len(values)} times")
        return values[0] if values else None
    return payload.get(name)


class Service:
    """The served models, their workers and the tasks they were taught."""

    def __init__(self, models: list[ServedModel], config: ServeConfig) -> None:
        self.config = config
        self.models = {m.name: m for m in models}
        self.workers: dict[str, ModelWorker] = {}
        self.tasks = TaskStore(config.limits.max_tasks, config.limits.task_ttl_s, prefix=config.worker_id)

    def start(self) -> None:
        for name, model in self.models.items():
            self.workers[name] = ModelWorker(model.classifier, model.reader, self.config.batching, name)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()

    def model(self, name: Any) -> ServedModel:
        """The model a request names; with one model served the name may be left out."""
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ApiError(400, "bad_request", f"give the model: one of {', '.join(sorted(self.models))}")
        if not isinstance(name, str) or name not in self.models:
            raise ApiError(
                404, "unknown_model", f"no model {_shown(name)} is served; served: {', '.join(sorted(self.models))}"
            )
        return self.models[name]

    async def payload(self, request: Request, media_type: str | None = None) -> dict[str, Any] | Form:
        """The parsed body of a request in `media_type` (by default JSON or multipart, whichever it is)."""
        given = _media_type(request)
        if media_type is not None and given != media_type:
            raise ApiError(415, "unsupported_media_type", f"this takes {media_type}, got {given or 'no Content-Type'}")
        if given == JSON_TYPE:
            return await _json(request)
        if given == FORM_TYPE:
            limits = self.config.limits
            return await _form(request, limits.max_images, limits.max_request_bytes)
        raise ApiError(
            415, "unsupported_media_type", f"send {JSON_TYPE} (texts) or {FORM_TYPE} (images), got {given or 'nothing'}"
        )

    async def create_task(self, request: Request) -> dict[str, Any]:
        payload = await self.payload(request)
        only(payload, ("model", "examples") if isinstance(payload, dict) else ("model", "images", "labels"))
        model = self.model(_field(payload, "model"))
        if model.reader.media_type != _media_type(request):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"model {model.name!r} takes {model.reader.media_type}, got {_media_type(request)}",
            )
        prepared, labels = await run_in_threadpool(model.reader.support, payload)
        classes = len(set(labels))
        if classes < 2:
            raise ApiError(422, "too_few_classes", f"{classes} class given: a task needs at least 2")
        if classes > model.max_classes:
            raise ApiError(
                422,
                "too_many_classes",
                f"{classes} classes given; a task of {model.name} takes at most {model.max_classes}",
            )
        try:
            adapted = await self.workers[model.name].adapt(prepared, labels)
        except ClassifierError as exc:
            raise ApiError(422, "bad_examples", str(exc)) from None
        task_id = self.tasks.add(model.name, adapted, len(prepared))
        return {
            "task_id": task_id,
            "model": model.name,
            "classes": [str(c) for c in adapted.classes],
            "examples": len(prepared),
            "ttl_s": self.config.limits.task_ttl_s,
        }

    def task(self, task_id: str) -> Task:
        """A kept task, or a 404."""
        task = self.tasks.get(task_id)
        if task is None:
            raise ApiError(404, "unknown_task", f"no task {_shown(task_id)} (it may have expired or been deleted)")
        return task

    async def predict(self, task_id: str, request: Request) -> dict[str, Any]:
        task = self.task(task_id)
        model = self.models[task.model]
        payload = await self.payload(request, model.reader.media_type)
        prepared: Prepared = await run_in_threadpool(model.reader.queries, payload)
        try:
            probabilities = await self.workers[model.name].predict(task.adapted, prepared)
        except ClassifierError as exc:  # e.g. a transductive learner given too few queries at once
            raise ApiError(422, "bad_examples", str(exc)) from None
        classes = [str(c) for c in task.adapted.classes]
        predictions = [
            {
                "name": name,
                "label": classes[int(row.argmax())],
                "confidence": float(row.max()),
                "probabilities": [float(p) for p in row],
            }
            for name, row in zip(prepared.names, probabilities, strict=True)
        ]
        return {"task_id": task_id, "classes": classes, "predictions": predictions}


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure as the service's JSON error: its own, the framework's (404, 405, ...), and, for a bug, a 500
    that says nothing of the code (the traceback goes to the server's log)."""

    async def api_error(_: Request, exc: Exception) -> Response:
        return _error(exc)  # type: ignore[arg-type]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 400)
        detail = getattr(exc, "detail", "")
        message = detail if isinstance(detail, str) and detail else "the request was refused"
        if status == 404:
            message = f"no such path: {request.url.path} (the API is under /v1/; see /docs)"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return JSONResponse(error_body(HTTP_CODES.get(status, "bad_request"), message), status_code=status)

    async def validation_error(_: Request, exc: Exception) -> Response:
        errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
        where = ".".join(str(p) for p in errors[0].get("loc", ())) if errors else "the request"
        message = errors[0].get("msg", "is invalid") if errors else "is invalid"
        return JSONResponse(error_body("bad_request", f"{where}: {message}"), status_code=400)

    async def bug(_: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "an internal error in polyskill; the server's log has the details"),
            status_code=500,
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, bug)


def create_app(models: list[ServedModel], config: ServeConfig | None = None) -> FastAPI:
    """The ASGI application serving `models` (see `models.load_models`) under `config`."""
    config = config or ServeConfig()
    service = Service(models, config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPIOffline(
        title="polyskill",
        version=__version__,
        description="Teach a trained few-shot model a new task with a few labelled examples, then use it.",
        lifespan=lifespan,
        static_url="/docs-assets",
    )
    app.state.service = service
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_request_bytes)
    if config.allowed_hosts is not None:
        app.add_middleware(HostCheck, names=config.allowed_hosts)
    app.add_middleware(SecurityHeaders)  # added last, so outermost: on every response

    def require_key(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key")
        if not key_matches(given, config.api_key):
            raise ApiError(401, "unauthorized", "this server needs its API key: Authorization: Bearer KEY or X-API-Key")

    guarded = [Depends(require_key)]

    @app.get("/v1/health", response_model=Health, tags=["service"])
    async def health() -> dict[str, Any]:
        """Whether the service is up, with how many models and tasks it holds."""
        return {"status": "ok", "models": len(service.models), "tasks": len(service.tasks)}

    @app.get("/v1/models", response_model=ModelsAnswer, dependencies=guarded, responses=ERRORS, tags=["service"])
    async def models_() -> dict[str, Any]:
        """The served runs (kind, modality, algorithm, input, class limit) and the server's limits."""
        return {"models": [m.describe() for m in service.models.values()], "limits": config.limits.as_dict()}

    @app.post(
        "/v1/tasks",
        status_code=201,
        response_model=TaskCreated,
        dependencies=guarded,
        responses=ERRORS,
        openapi_extra=support_body(),
        tags=["tasks"],
    )
    async def create_task(request: Request) -> JSONResponse:
        """Teach a new task: labelled texts as JSON, or labelled images as a multipart form."""
        return JSONResponse(await service.create_task(request), status_code=201)

    @app.get("/v1/tasks/{task_id}", response_model=TaskAnswer, dependencies=guarded, responses=ERRORS, tags=["tasks"])
    async def get_task(task_id: str) -> dict[str, Any]:
        """A kept task: its model, classes, number of examples and seconds left unless used."""
        task = service.task(task_id)
        return {
            "task_id": task_id,
            "model": task.model,
            "classes": [str(c) for c in task.adapted.classes],
            "examples": task.examples,
            "ttl_s": service.tasks.ttl_left(task),
        }

    @app.post(
        "/v1/tasks/{task_id}/predict",
        response_model=PredictAnswer,
        dependencies=guarded,
        responses=ERRORS,
        openapi_extra={"requestBody": {"content": {**text_queries_body(), **image_queries_body()}, "required": True}},
        tags=["tasks"],
    )
    async def predict(task_id: str, request: Request) -> JSONResponse:
        """Label queries with a task: each gets a label, its confidence and the probability of every class."""
        return JSONResponse(await service.predict(task_id, request))

    @app.delete("/v1/tasks/{task_id}", status_code=204, dependencies=guarded, responses=ERRORS, tags=["tasks"])
    async def delete_task(task_id: str) -> Response:
        """Forget a task."""
        if not service.tasks.remove(task_id):
            raise ApiError(404, "unknown_task", f"no task {_shown(task_id)} (it may have expired or been deleted)")
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            raise ApiError(404, "not_found", "the page is not installed")
        return FileResponse(index, media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app
