"""ASGI middleware of the service: a cap on the request body (by its declared length and by what arrives), the Host
names a loopback server answers, and the security headers of every response."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_body
from .security import host_name

#: the page's policy: its own scripts, styles and images only (uploaded images are shown from blob: URLs)
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyLimit:
    """413 for a body over `max_bytes`: at once when Content-Length says so, else as soon as more has arrived
    (a chunked upload cannot declare its size)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(
            413, "request_too_large", f"the request body is over the server's limit of {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await JSONResponse(error_body("bad_request", "Content-Length is not a number"), 400)(
                    scope, receive, send
                )
                return
            if int(declared) > self.max_bytes:
                error = self._too_large()
                await JSONResponse(error.body(), error.status, headers={"Connection": "close"})(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


class HostCheck:
    """400 for a request whose Host header names none of `names` (a loopback server reached through DNS
    rebinding sees the attacker's host name there)."""

    def __init__(self, app: ASGIApp, names: tuple[str, ...]) -> None:
        self.app, self.names = app, {n.lower() for n in names}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = host_name(_header(scope, b"host") or "")
            if host not in self.names:
                body = error_body(
                    "bad_host",
                    f"this server answers requests for {', '.join(sorted(self.names))}, not {host or 'no Host'} "
                    "(polyskill serve --allow-host NAME admits another)",
                )
                await JSONResponse(body, 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """No MIME sniffing, no framing, no referrer on every response; the page's content policy on everything but
    the API docs page (whose Swagger UI starts with an inline script); API answers are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if not path.startswith("/docs"):
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                if path.startswith("/v1/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
