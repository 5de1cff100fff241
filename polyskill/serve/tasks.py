"""The tasks a server keeps: a bounded store, least recently used first out, each forgotten `ttl_s` seconds after
its last use. Used from the event loop only, so it needs no lock."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..classifier import AdaptedTask


@dataclass
class Task:
    """A kept task: the model it belongs to, what it learned, how many examples taught it, when it was last used."""

    model: str
    adapted: AdaptedTask
    examples: int
    last_used: float


class TaskStore:
    """At most `max_tasks` tasks; adding one more drops the least recently used, and a task unused for `ttl_s`
    seconds is gone. Ids are 128-bit random (unguessable), prefixed with `prefix` when given."""

    def __init__(
        self, max_tasks: int, ttl_s: float, prefix: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_tasks, self.ttl_s, self.prefix, self.clock = max_tasks, ttl_s, prefix, clock
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._tasks)

    def _expire(self) -> None:
        """Drop the expired tasks: the least recently used come first, so stop at the first live one."""
        now = self.clock()
        while self._tasks:
            task_id, task = next(iter(self._tasks.items()))
            if now - task.last_used < self.ttl_s:
                break
            del self._tasks[task_id]

    def add(self, model: str, adapted: AdaptedTask, examples: int) -> str:
        """Keep a new task; its id."""
        self._expire()
        task_id = f"{self.prefix}{secrets.token_urlsafe(16)}"
        self._tasks[task_id] = Task(model, adapted, examples, self.clock())
        while len(self._tasks) > self.max_tasks:
            self._tasks.popitem(last=False)
        return task_id

    def get(self, task_id: str) -> Task | None:
        """The task, marked as used now; None if there is none by that id (or it expired)."""
        self._expire()
        task = self._tasks.get(task_id)
        if task is not None:
            task.last_used = self.clock()
            self._tasks.move_to_end(task_id)
        return task

    def ttl_left(self, task: Task) -> float:
        """Seconds until `task` expires unless used."""
        return max(0.0, self.ttl_s - (self.clock() - task.last_used))

    def remove(self, task_id: str) -> bool:
        """Forget the task; whether there was one."""
        self._expire()
        return self._tasks.pop(task_id, None) is not None
