"""Running the service: the socket is bound first (so a port in use is one clear error, not a server log), then
uvicorn serves the app on it until Ctrl-C or SIGTERM."""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable

import uvicorn

from ..errors import ConfigError
from .app import create_app
from .config import ServeConfig
from .models import ServedModel, load_models
from .security import check_bind


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: any free one), or ConfigError saying why it cannot be."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    # with its protocol named (IPPROTO_TCP), asyncio sets TCP_NODELAY on every accepted connection; without it,
    # a response written in two pieces waits for the client's delayed ACK (40 ms on Linux)
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """http://host:port/ of a listening socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def summary(models: list[ServedModel]) -> str:
    described = [m.describe() for m in models]
    return ", ".join(f"{d['name']} ({d['modality']}, {d['algorithm']})" for d in described)


def serve(
    specs: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    echo: Callable[[str], None] = print,
    log_level: str = "warning",
) -> None:
    """Load the runs of `specs` and serve them on host:port until stopped."""
    config = config or ServeConfig()
    check_bind(host, config.api_key)
    models = load_models(specs, config)
    sock = listen(host, port)
    app = create_app(models, config)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=log_level, server_header=False, timeout_graceful_shutdown=10, access_log=False)
    )
    gc.collect()
    gc.freeze()  # what is loaded now (torch, the models) lives as long as the server: keep it out of every collection
    echo(f"serving {summary(models)} on {url_of(sock)} (API docs at /docs); Ctrl-C stops")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down and passes Ctrl-C on: nothing left to do
        echo("stopped")
    finally:
        sock.close()
