"""TensorBoard event files in OUT/tensorboard/: the run's scalars at their steps and its resolved config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch.utils.tensorboard import SummaryWriter

from . import scalars


class TensorBoardSink:
    """Writes every record's scalars (`train/loss`, `val/accuracy`, ...): `tensorboard --logdir runs/` shows curves."""

    def __init__(self, out: Path, config: dict[str, Any]) -> None:
        self.log_dir = Path(out) / "tensorboard"
        self.config = config
        self.writer: SummaryWriter | None = None

    def write(self, record: dict[str, Any]) -> None:
        """Add the record's scalars at its step, opening the event file on the first record."""
        step = int(record["step"])
        if self.writer is None:
            self.writer = self._open(step)
        for tag, value in scalars(record).items():
            self.writer.add_scalar(tag, value, step)

    def _open(self, step: int) -> SummaryWriter:
        """A writer for this session; a resumed run hides the old session's events from `step` on, which the
        resumed run redoes (metrics.jsonl drops them the same way), and records its config again at `step`."""
        resumed = any(self.log_dir.glob("events.out.tfevents.*"))
        writer = SummaryWriter(str(self.log_dir), purge_step=step if resumed else None, flush_secs=10)
        text = yaml.safe_dump(self.config, sort_keys=False)
        writer.add_text("config", "".join(f"    {line}\n" for line in text.splitlines()), step if resumed else 0)
        return writer

    def close(self) -> None:
        """Flush the event file and release it."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
