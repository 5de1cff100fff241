"""What a `polyskill serve` process is allowed to take and keep: every limit in one place, with its default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..errors import ConfigError


@dataclass(frozen=True)
class ServeLimits:
    """The bounds on a request and on what the server keeps. A request over one of them gets a 4xx naming it."""

    max_request_bytes: int = 32 * 1024 * 1024
    max_images: int = 64  # per request
    max_texts: int = 256  # per request
    max_text_chars: int = 4000
    max_pixels: int = 4096 * 4096  # declared in an image's header, checked before decoding
    max_classes: int = 50
    max_tasks: int = 1000  # beyond it the least recently used task is dropped
    task_ttl_s: float = 3600.0  # seconds since a task was last used

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"serve limit {f.name} must be a number > 0, got {value!r}")
        if self.max_classes < 2:
            raise ConfigError(f"serve limit max_classes must be at least 2, got {self.max_classes}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Batching:
    """How concurrent predictions are gathered: the first queued request waits at most `window_s` for others,
    and a batch holds at most `max_queries` queries (a single larger request still runs, alone)."""

    window_s: float = 0.005
    max_queries: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.window_s, bool) or not isinstance(self.window_s, (int, float)) or self.window_s < 0:
            raise ConfigError(f"the batch window must be >= 0 seconds, got {self.window_s!r}")
        if isinstance(self.max_queries, bool) or not isinstance(self.max_queries, int) or self.max_queries < 1:
            raise ConfigError(f"the maximum batch must be an integer >= 1, got {self.max_queries!r}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything `create_app` needs besides the runs: limits, batching, the API key (None: no key asked), the
    Host names admitted (None: any), whether long texts are cut to the encoder's window, the torch device, and
    the prefix of task ids (`worker_id`, so a reverse proxy can route a task's requests to its process)."""

    limits: ServeLimits = field(default_factory=ServeLimits)
    batching: Batching = field(default_factory=Batching)
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    truncate: bool = False
    device: str = "cpu"
    worker_id: str = ""
