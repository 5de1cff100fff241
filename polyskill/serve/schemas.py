"""The shapes of the API's answers and request bodies, for its OpenAPI schema (`/docs`, `/openapi.json`). Requests
are parsed by hand (see app.py); these models describe them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable word for the failure: too_many_images, unknown_task, ...")
    message: str = Field(description="what was wrong, in a sentence")


class ErrorAnswer(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    models: int
    tasks: int


class ModelInfo(BaseModel):
    name: str
    kind: str
    modality: str = Field(description="image or text")
    algorithm: str
    recipe: str
    input: dict[str, Any] = Field(description="channels, height, width for images; max_tokens, truncate for text")
    max_classes: int


class ModelsAnswer(BaseModel):
    models: list[ModelInfo]
    limits: dict[str, int | float]


class TaskCreated(BaseModel):
    task_id: str
    model: str
    classes: list[str] = Field(description="sorted; every probability list follows this order")
    examples: int
    ttl_s: float = Field(description="seconds the task is kept after its last use")


class TaskAnswer(TaskCreated):
    ttl_s: float = Field(description="seconds left before the task is forgotten, unless it is used")


class Prediction(BaseModel):
    name: str = Field(description="the image's file name, or the text")
    label: str
    confidence: float
    probabilities: list[float]


class PredictAnswer(BaseModel):
    task_id: str
    classes: list[str]
    predictions: list[Prediction]


TEXT_SUPPORT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "description": "the served model; may be left out when one is served"},
        "examples": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "label": {"type": "string"}},
                "required": ["text", "label"],
            },
        },
    },
    "required": ["examples"],
}
TEXT_QUERIES: dict[str, Any] = {
    "type": "object",
    "properties": {"texts": {"type": "array", "items": {"type": "string"}}},
    "required": ["texts"],
}


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": what}
    for status, what in (
        (400, "a malformed request"),
        (401, "the API key is missing or wrong"),
        (404, "no such task or model"),
        (413, "the body is over the size limit"),
        (415, "texts go as JSON, images as multipart"),
        (422, "examples the model cannot take (bad image, too many, too long, too many classes, ...)"),
    )
}


def _form_schema(labels: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}
    if labels:
        properties["model"] = {"type": "string"}
        properties["labels"] = {"type": "array", "items": {"type": "string"}, "description": "one per image, in order"}
    return {"schema": {"type": "object", "properties": properties, "required": ["images"]}}


def support_body() -> dict[str, Any]:
    """The request body of `POST /v1/tasks`: labelled texts as JSON or labelled images as a form."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": TEXT_SUPPORT},
                "multipart/form-data": _form_schema(labels=True),
            },
        }
    }


def text_queries_body() -> dict[str, Any]:
    return {"application/json": {"schema": TEXT_QUERIES}}


def image_queries_body() -> dict[str, Any]:
    return {"multipart/form-data": _form_schema(labels=False)}
