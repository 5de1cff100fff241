"""Data: the data root, checked files, Omniglot, user image folders, and seeded episode sampling."""

from .classes import ClassDataset
from .episodes import EpisodeSampler, Support, TaskBatch, episodes
from .files import fetch, status, verify
from .folder import image_folder
from .omniglot_images import omniglot
from .registry import FILES, FileEntry
from .root import cache_dir, data_root

__all__ = ["ClassDataset", "EpisodeSampler", "FILES", "FileEntry", "Support", "TaskBatch", "cache_dir",
           "data_root", "episodes", "fetch", "image_folder", "omniglot", "status", "verify"]
