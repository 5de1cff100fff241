"""Data: the data root, checked files, Omniglot, the colour few-shot sets (miniImageNet, tieredImageNet,
CIFAR-FS, CUB-200-2011), user image folders, seeded episode sampling with training-time image augmentation,
sinusoid and multimodal regression tasks, tasks made from a multi-task data set's examples, and the multi-task
data sets (MultiFashion, School, Parkinsons, a planted-relations synthetic regression)."""

from .cifar_fs import cifar_fs
from .classes import ClassDataset
from .cub import cub
from .episodes import EpisodeSampler, Support, TaskBatch, episodes
from .fashion_mnist import fashion_mnist
from .files import fetch, status, verify
from .folder import image_folder
from .image_set_check import SetCheck, check_image_set
from .mini_imagenet import mini_imagenet
from .mtl_synthetic import SYNTHETIC_GROUPS, mtl_synthetic, synthetic_groups, synthetic_relations, synthetic_weights
from .multifashion import multifashion
from .multimodal import MultimodalTasks
from .omniglot_images import omniglot
from .parkinsons import parkinsons
from .registry import FILES, IMAGE_SETS, FileEntry, ImageSetEntry
from .root import cache_dir, data_root
from .school import school
from .sinusoid import SinusoidTasks
from .task_examples import TaskExamples
from .text_classes import TextClasses, draw_shots
from .text_sets import TEXT_SETS, TextSet, text_set
from .tiered_imagenet import tiered_imagenet
from .user_text import read_labelled_text, read_query_text

__all__ = [
    "FILES",
    "IMAGE_SETS",
    "SYNTHETIC_GROUPS",
    "TEXT_SETS",
    "ClassDataset",
    "EpisodeSampler",
    "FileEntry",
    "ImageSetEntry",
    "MultimodalTasks",
    "SetCheck",
    "SinusoidTasks",
    "Support",
    "TaskBatch",
    "TaskExamples",
    "TextClasses",
    "TextSet",
    "cache_dir",
    "check_image_set",
    "cifar_fs",
    "cub",
    "data_root",
    "draw_shots",
    "episodes",
    "fashion_mnist",
    "fetch",
    "image_folder",
    "mini_imagenet",
    "mtl_synthetic",
    "multifashion",
    "omniglot",
    "parkinsons",
    "read_labelled_text",
    "read_query_text",
    "school",
    "status",
    "synthetic_groups",
    "synthetic_relations",
    "synthetic_weights",
    "text_set",
    "tiered_imagenet",
    "verify",
]
