"""`polyskill serve`: trained few-shot runs behind an HTTP API and a page, taught new tasks by their users.
Needs the `serve` extra (`pip install 'polyskill[serve]'`)."""

from .app import create_app
from .config import Batching, ServeConfig, ServeLimits
from .models import ServedModel, load_models

__all__ = ["Batching", "ServeConfig", "ServeLimits", "ServedModel", "create_app", "load_models"]
