"""What the config knows of each dataset source, without reading any data: the classes of the
built-in sources, their flip default, and each reader's options with their checks.

The readers (dmlbench.data.sources) check their options with :func:`check_options` too, so the
config check refuses before any job what a reader would refuse when it runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from dmlbench.errors import ConfigError, DatasetError

#: Classes of the built-in sources, so impossible conditions are refused before any job (a folder
#: dataset's are its class folders: :func:`folder_classes`).
KNOWN_CLASS_COUNTS = {"cifar10": 10, "mnist": 10, "fashion_mnist": 10, "digits": 10}
#: Horizontal flips are label-preserving for natural images, not for digits.
FLIP_DEFAULT = {"cifar10": True, "folder": True, "mnist": False, "fashion_mnist": False, "digits": False}


#: The options each source reads (besides `source` and `root`), with the reader's default. A
#: config entry's other keys (class_order, flip, training) are the pipeline's, not the reader's.
SOURCE_OPTIONS: dict[str, dict[str, object]] = {
    "cifar10": {"download": False},
    "mnist": {"download": False},
    "fashion_mnist": {"download": False},
    "digits": {"image_size": 16, "test_fraction": 0.3, "split_seed": 0},
    "folder": {"image_size": None, "channels": None},
}
#: Sources that read files under `root` (the others ship with a package).
ROOT_SOURCES = ("cifar10", "mnist", "fashion_mnist", "folder")
#: The smallest image side: the small CNN halves the side twice (4 -> 2 -> 1; 3 would reach 0).
MIN_IMAGE_SIZE = 4
#: scikit-learn's digits: images per class "0".."9" (1797 in all), for the split check below.
DIGITS_CLASS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)


def digits_split_sizes(test_fraction: float) -> tuple[int, int]:
    """(train, test) images of the digits split with this test share, as scikit-learn's
    train_test_split counts them: test = ceil(test_fraction * 1797), train = the rest."""
    n = sum(DIGITS_CLASS_COUNTS)
    n_test = math.ceil(test_fraction * n)
    return n - n_test, n_test


def check_options(spec: dict, where: str | None = None) -> dict:
    """The reader options of ``spec`` (a config's dataset entry), checked as its source's reader
    checks them, with the reader's defaults filled in (``SOURCE_OPTIONS``). Needs no data and no
    torch: the config check calls it for every dataset before any job, the readers before reading.

    ``where`` names the entry in messages (``datasets.digits`` -> ``datasets.digits.test_fraction``);
    by default ``digits `test_fraction```. Raises ConfigError naming the option and what to do.
    """
    source = spec.get("source")
    if source not in SOURCE_OPTIONS:
        raise DatasetError(f"unknown dataset source {source!r}; known sources: {', '.join(sorted(SOURCE_OPTIONS))}")

    def name(key: str) -> str:
        return f"{where}.{key}" if where else f"{source} `{key}`"

    opts = {key: spec.get(key, default) for key, default in SOURCE_OPTIONS[source].items()}
    if "download" in opts and not isinstance(opts["download"], bool):
        raise ConfigError(f"{name('download')} must be true or false, got {opts['download']!r}")
    size = opts.get("image_size")
    # bool is an int subclass; `image_size: true` is a typo, not 1
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE):
        raise ConfigError(
            f"{name('image_size')} must be an integer >= {MIN_IMAGE_SIZE} (pixels per side; the "
            f"small CNN halves it twice), got {size!r}"
        )
    channels = opts.get("channels")
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ConfigError(f"{name('channels')} must be 1 (grey) or 3 (RGB), got {channels!r}")
    if source == "digits":
        frac, seed = opts["test_fraction"], opts["split_seed"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ConfigError(f"{name('test_fraction')} must be a number strictly between 0 and 1, got {frac!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{name('split_seed')} must be an integer, got {seed!r}")
        n_train, n_test = digits_split_sizes(frac)
        n_classes, n = len(DIGITS_CLASS_COUNTS), sum(DIGITS_CLASS_COUNTS)
        if min(n_train, n_test) < n_classes:
            side = "test" if n_test < n_classes else "train"
            raise ConfigError(
                f"{name('test_fraction')} {frac} leaves {min(n_train, n_test)} {side} images of the {n} digits, "
                f"fewer than their {n_classes} classes: the stratified split needs every class on both sides; "
                f"use a test_fraction above {(n_classes - 1) / n:.4f} and at most {(n - n_classes) / n:.4f}"
            )
    return opts


#: The image files a folder dataset reads (dmlbench.data.sources reads exactly these).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def class_dirs(split_dir) -> list[str]:
    """The class folders of ``root/train`` or ``root/test``, sorted; hidden folders
    (.ipynb_checkpoints, .git) are tool debris, not classes."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def folder_classes(root) -> list[str]:
    """The classes of a folder dataset: the sorted class folders of ``root/train``, checked:
    ``root/train`` and ``root/test`` exist and have the same class folders. Lists folders only (no
    image is opened), so the config check can count a folder dataset's classes; the reader
    (dmlbench.data.sources) takes its classes from here too."""
    root = Path(os.path.expanduser(str(root)))
    layout = f"expected {root}/train/<class>/*.png|jpg|jpeg and {root}/test/<class>/*.png|jpg|jpeg"
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DatasetError(f"folder dataset: {root / split} does not exist; {layout}")
    classes = class_dirs(root / "train")
    if not classes:
        raise DatasetError(f"folder dataset: {root / 'train'} has no class folders; {layout}")
    test_classes = class_dirs(root / "test")
    if test_classes != classes:
        missing = sorted(set(classes) - set(test_classes))
        extra = sorted(set(test_classes) - set(classes))
        parts = [f"missing in test: {', '.join(missing)}"] if missing else []
        parts += [f"only in test: {', '.join(extra)}"] if extra else []
        diff = "; ".join(parts)
        raise DatasetError(
            f"folder dataset: {root / 'test'} must have the same class folders as {root / 'train'} ({diff})"
        )
    return classes


def is_image_file(path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def folder_listing(root) -> dict[str, dict[str, int]]:
    """{"train": {class: images}, "test": {class: images}} of a folder dataset, from the
    directory listing alone (no image is opened): what the config check needs to refuse, before
    any job, a dataset its conditions cannot run on. Missing split folders are left out."""
    root = Path(root)
    listing = {}
    for split in ("train", "test"):
        if (root / split).is_dir():
            listing[split] = {
                name: sum(1 for p in (root / split / name).iterdir() if is_image_file(p))
                for name in class_dirs(root / split)
            }
    return listing
