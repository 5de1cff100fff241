"""Data: the data root, checked files, Omniglot, user image folders, seeded episode sampling, sinusoid tasks."""

from .classes import ClassDataset
from .episodes import EpisodeSampler, Support, TaskBatch, episodes
from .files import fetch, status, verify
from .folder import image_folder
from .omniglot_images import omniglot
from .registry import FILES, FileEntry
from .root import cache_dir, data_root
from .sinusoid import SinusoidTasks

__all__ = ["ClassDataset", "EpisodeSampler", "FILES", "FileEntry", "SinusoidTasks", "Support", "TaskBatch", "cache_dir",
           "data_root", "episodes", "fetch", "image_folder", "omniglot", "status", "verify"]
