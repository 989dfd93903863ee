"""Dataset sources read into one in-memory form, and its ``.npz`` cache.

Every source returns a :class:`Dataset`: images as uint8 arrays in NHWC layout (pixel values
0..255, C = 1 for grey, 3 for RGB), labels as int64 indices into ``classes``, which keeps the
source's canonical class order. Sources are picked by ``spec["source"]`` (see ``SOURCES``):

- ``cifar10``: the official "CIFAR-10 python version" pickles (32x32x3).
- ``mnist`` / ``fashion_mnist``: the official idx files, plain or gzipped (28x28x1).
- ``digits``: scikit-learn's 8x8 digits, upscaled to ``image_size`` and split stratified.
- ``folder``: ``root/{train,test}/<class>/*.png|jpg|jpeg``.

Every problem with the input data raises :class:`~dmlbench.errors.DatasetError` whose message
names the file or folder and says what to do; invalid config values raise ``ConfigError``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmlbench.config.sources import SOURCE_OPTIONS, check_options, folder_classes, is_image_file
from dmlbench.errors import ConfigError, DatasetError
from dmlbench.io import write_npz

__all__ = ["Dataset", "SOURCES", "SOURCE_OPTIONS", "check_options", "load_source", "save_npz", "load_npz"]


@dataclass
class Dataset:
    """Train and test images with labels.

    ``x_*``: uint8 (N, H, W, C), values 0..255, C = 1 (grey) or 3 (RGB).
    ``y_*``: int64 (N,), indices into ``classes``.
    ``classes``: class names in the source's canonical order.
    ``notes``: what the reader did that the user should know (e.g. images converted to RGB);
    printed by ``dmlbench prepare``, not saved.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    notes: list[str] = field(default_factory=list)


def _check_dataset(ds: Dataset, origin: str, fix: str) -> None:
    """Raise DatasetError unless ``ds`` has the dtypes and shapes documented on Dataset."""

    def bad(what: str) -> DatasetError:
        return DatasetError(f"{origin}: {what}; {fix}")

    classes = ds.classes
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad("classes must be a non-empty list of strings")
    if len(set(classes)) != len(classes):
        raise bad(f"class names are not unique: {classes}")
    for split in ("train", "test"):
        x = getattr(ds, f"x_{split}")
        y = getattr(ds, f"y_{split}")
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise bad(f"x_{split} must be uint8 of shape (N, H, W, 1 or 3), got {got}")
        if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (x.shape[0],):
            got = f"{y.dtype} {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
            raise bad(f"y_{split} must be int64 of shape ({x.shape[0]},), got {got}")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise bad(f"y_{split} has labels outside 0..{len(classes) - 1}")
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise bad(f"train images are {ds.x_train.shape[1:]} but test images are {ds.x_test.shape[1:]}")


# ---------------------------------------------------------------------------------------------
# spec helpers


def _root(spec: dict, default: str | None) -> Path:
    root = spec.get("root", default)
    if root is None:
        raise DatasetError(
            f"dataset source {spec.get('source')!r} needs `root` (the folder holding the data) in the config"
        )
    return Path(os.path.expanduser(str(root)))


def _download_failed(name: str, root: Path, exc: BaseException, manual: str) -> DatasetError:
    return DatasetError(
        f"downloading {name} into {root} failed ({type(exc).__name__}: {exc}); "
        f"check the network connection, or {manual}"
    )


# ---------------------------------------------------------------------------------------------
# CIFAR-10

_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
_CIFAR_SUBDIR = "cifar-10-batches-py"


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """Stand-in for ``_codecs.encode``: protocol-2 pickles written by Python 3 rebuild bytes
    with ``_codecs.encode(str, "latin1")``; other codecs (zlib, rot13, ...) are never needed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed")
    return obj.encode("latin1", errors)


# Only what rebuilds ndarrays, dtypes and numpy scalars. Both numpy 1 (numpy.core) and numpy 2
# (numpy._core) module names appear in real files; map them to the live functions so loading
# an old file does not import the deprecated numpy.core alias.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy.core.multiarray", "scalar"): np.int64(0).__reduce__()[0],
    ("numpy._core.multiarray", "scalar"): np.int64(0).__reduce__()[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array globals: a pickle is a program, and a
    downloaded or shared batch file must not be able to run anything else."""

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="bytes")
        self._path = path

    def find_class(self, module, name):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refuses to execute code from {self._path}: it references {module}.{name}, which "
                f"a CIFAR-10 batch file never does; replace it with the official "
                f"'CIFAR-10 python version' file"
            ) from None


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(fh, path).load()
    except DatasetError:
        raise
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # truncated/corrupt pickles raise many types (EOFError, UnpicklingError, ...)
        raise DatasetError(
            f"{path} is truncated or corrupt ({type(exc).__name__}: {exc}); "
            f"delete it and download the official 'CIFAR-10 python version' again"
        ) from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} is not a CIFAR-10 batch file (holds {type(obj).__name__}, not a dict)")
    return obj


def _get(d: dict, key: str, path: Path):
    # Official files (Python 2 pickles read with encoding="bytes") have bytes keys;
    # accept str keys too so re-pickled copies work.
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise DatasetError(f"{path} has no {key!r} entry; it is not a CIFAR-10 batch file")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data = _get(d, "data", path)
    labels = _get(d, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: 'labels' is not a list of integers ({exc})") from exc
    if y.shape != (data.shape[0],):
        raise DatasetError(f"{path}: {data.shape[0]} images but labels of shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DatasetError(f"{path}: labels outside 0..9")
    # rows are channel-first planes (1024 R, 1024 G, 1024 B), each plane row-major 32x32
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _find_cifar(root: Path) -> tuple[Path | None, list[tuple[Path, list[str]]]]:
    """Return the folder holding all CIFAR-10 files (or None) and, per place, what is missing."""
    looked = []
    for d in (root, root / _CIFAR_SUBDIR):
        missing = [f for f in _CIFAR_FILES if not (d / f).is_file()]
        if not missing:
            return d, looked
        looked.append((d, missing))
    return None, looked


def _load_cifar10(spec: dict) -> Dataset:
    """CIFAR-10: 50000 train / 10000 test images, (N, 32, 32, 3) uint8, 10 classes."""
    root = _root(spec, "data/cifar10")
    download = check_options(spec)["download"]
    folder, looked = _find_cifar(root)
    manual = (
        f"place the official 'CIFAR-10 python version' files ({', '.join(_CIFAR_FILES)}) "
        f"in {root} or {root / _CIFAR_SUBDIR}"
    )
    if folder is None and download:
        try:
            import torchvision.datasets as tvd

            tvd.CIFAR10(str(root), train=True, download=True)
            tvd.CIFAR10(str(root), train=False, download=True)
        except Exception as exc:  # network errors come as URLError, RuntimeError, OSError, ...
            raise _download_failed("CIFAR-10", root, exc, manual) from exc
        folder, looked = _find_cifar(root)
    if folder is None:
        places = "; ".join(
            f"{d} ({'no CIFAR-10 files' if len(m) == len(_CIFAR_FILES) else 'missing ' + ', '.join(m)})"
            for d, m in looked
        )
        raise DatasetError(
            f"CIFAR-10 not found; looked in {places}. Set `download: true` for this dataset in the config, or {manual}"
        )
    parts = [_read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(folder / "test_batch")
    meta_path = folder / "batches.meta"
    names = _get(_unpickle(meta_path), "label_names", meta_path)
    try:
        classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    except (TypeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{meta_path}: 'label_names' is not a list of names ({exc})") from exc
    if len(classes) != 10:
        raise DatasetError(f"{meta_path}: expected 10 label names, got {len(classes)}")
    return Dataset(
        x_train=np.concatenate([p[0] for p in parts]),
        y_train=np.concatenate([p[1] for p in parts]),
        x_test=x_test,
        y_test=y_test,
        classes=classes,
    )


# ---------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (idx format)

_IDX_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS = 0x00000801  # unsigned byte, 1 dimension
_IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an idx file: images as (N, rows, cols, 1) uint8, labels as (N,) int64."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); delete it and fetch the file again"
        ) from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    kind = "images" if magic == _IDX_IMAGES else "labels"
    header = 16 if magic == _IDX_IMAGES else 8
    magic_bytes = magic.to_bytes(4, "big")
    # a file cut inside the magic number is an interrupted copy, not a different format
    if len(data) < 4 and data == magic_bytes[: len(data)]:
        raise DatasetError(f"{path} is truncated: only {len(data)} bytes; delete it and fetch it again")
    if data[:4] != magic_bytes:
        raise DatasetError(
            f"{path} is not an idx file of {kind} (starts 0x{data[:4].hex()}, expected 0x{magic:08x}); "
            f"replace it with the official file"
        )
    if len(data) < header:
        raise DatasetError(f"{path} is truncated: {len(data)} bytes, shorter than its header; fetch it again")
    dims = [int.from_bytes(data[i : i + 4], "big") for i in range(4, header, 4)]
    expected = header + int(np.prod(dims))
    if len(data) < expected:
        raise DatasetError(
            f"{path} is truncated: its header promises {expected} bytes, the file has {len(data)}; "
            f"delete it and fetch it again"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{path} is corrupt: {len(data) - expected} bytes more than its header describes; "
            f"replace it with the official file"
        )
    # copy: frombuffer over bytes is read-only, and consumers (torch.from_numpy) want writable
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).copy()
    if magic == _IDX_IMAGES:
        return arr.reshape(dims[0], dims[1], dims[2], 1)
    return arr.astype(np.int64)


def _idx_dirs(root: Path, tv_name: str) -> list[Path]:
    return [root, root / "raw", root / tv_name / "raw"]


def _find_idx(root: Path, tv_name: str) -> dict[str, Path] | None:
    """Locate the four idx files (plain preferred over .gz); None if any is missing."""
    found = {}
    for key, name in _IDX_NAMES.items():
        for d in _idx_dirs(root, tv_name):
            hit = next((d / n for n in (name, name + ".gz") if (d / n).is_file()), None)
            if hit is not None:
                found[key] = hit
                break
        else:
            return None
    return found


def _load_idx_source(
    spec: dict, *, title: str, tv_name: str, default_root: str, classes: list[str], extra_hint: str = ""
) -> Dataset:
    """Shared reader for the idx sources; ``tv_name`` is torchvision's class (and folder) name."""
    root = _root(spec, default_root)
    download = check_options(spec)["download"]
    files = _find_idx(root, tv_name)
    manual = (
        f"place the official files ({', '.join(_IDX_NAMES.values())}, plain or .gz) in "
        f"{root / tv_name / 'raw'}{extra_hint}"
    )
    if files is None and download:
        try:
            import torchvision.datasets as tvd

            getattr(tvd, tv_name)(str(root), train=True, download=True)
        except Exception as exc:  # network errors come as URLError, RuntimeError, OSError, ...
            raise _download_failed(title, root, exc, manual) from exc
        files = _find_idx(root, tv_name)
    if files is None:
        places = ", ".join(str(d) for d in _idx_dirs(root, tv_name))
        raise DatasetError(
            f"{title} idx files not found; looked in {places} for {', '.join(_IDX_NAMES.values())} "
            f"(plain or .gz). Set `download: true` for this dataset in the config, or {manual}"
        )
    out = {}
    for split in ("train", "test"):
        x = _read_idx(files[f"{split}_images"], _IDX_IMAGES)
        y = _read_idx(files[f"{split}_labels"], _IDX_LABELS)
        if len(x) != len(y):
            raise DatasetError(
                f"{files[f'{split}_images']} has {len(x)} images but {files[f'{split}_labels']} has "
                f"{len(y)} labels; the files do not belong together, fetch both again"
            )
        if y.size and y.max() >= len(classes):
            raise DatasetError(f"{files[f'{split}_labels']} has labels outside 0..{len(classes) - 1}")
        out[split] = (x, y)
    return Dataset(out["train"][0], out["train"][1], out["test"][0], out["test"][1], list(classes))


def _load_mnist(spec: dict) -> Dataset:
    """MNIST: 60000 train / 10000 test images, (N, 28, 28, 1) uint8, classes "0".."9"."""
    return _load_idx_source(
        spec, title="MNIST", tv_name="MNIST", default_root="data/mnist",
        classes=[str(i) for i in range(10)],
    )  # fmt: skip


def _load_fashion_mnist(spec: dict) -> Dataset:
    """Fashion-MNIST: 60000 train / 10000 test images, (N, 28, 28, 1) uint8, 10 classes."""
    return _load_idx_source(
        spec, title="Fashion-MNIST", tv_name="FashionMNIST",
        default_root="/usr/share/datasets/fashion-mnist", classes=_FASHION_CLASSES,
        extra_hint=" (on Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them in "
        "/usr/share/datasets/fashion-mnist)",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scikit-learn digits


def _load_digits(spec: dict) -> Dataset:
    """sklearn digits (1797 images, 8x8, values 0..16) upscaled to (N, s, s, 1) uint8 0..255.

    ``image_size`` s (default 16): bilinear, align_corners=False. ``test_fraction`` (default 0.3)
    and ``split_seed`` (default 0): stratified train/test split. Classes "0".."9".
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    opts = check_options(spec)
    size, frac, seed = opts["image_size"], opts["test_fraction"], opts["split_seed"]

    digits = load_digits()
    # scale before interpolating so rounding happens once, on the final 0..255 values
    imgs = torch.from_numpy(digits.images.astype(np.float64) * (255.0 / 16.0)).unsqueeze(1)
    if size != imgs.shape[-1]:
        imgs = F.interpolate(imgs, size=(size, size), mode="bilinear", align_corners=False)
    x = imgs.squeeze(1).numpy().round().clip(0, 255).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    try:
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=frac, stratify=y, random_state=seed)
    except ValueError as exc:  # e.g. too few test samples to hold every class
        raise ConfigError(f"digits split with test_fraction={frac} is impossible: {exc}") from exc
    return Dataset(x_train, y_train, x_test, y_test, [str(i) for i in range(10)])


# ---------------------------------------------------------------------------------------------
# image folders

_GREY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _image_files(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.iterdir() if is_image_file(p))
    if not files:
        raise DatasetError(
            f"class folder {class_dir} holds no images (.png, .jpg, .jpeg); add images or remove the folder"
        )
    return files


def _to_mode(im, mode: str):
    """Convert a PIL image to "L" or "RGB"."""
    from PIL import Image

    if im.mode in _WIDE_GREY_MODES:
        # PIL's convert("L") clips 16-bit values at 255 (almost everything turns white); rescale
        arr = np.asarray(im).astype(np.float64) / 257.0
        im = Image.fromarray(arr.round().clip(0, 255).astype(np.uint8))
    return im if im.mode == mode else im.convert(mode)


def _load_folder(spec: dict) -> Dataset:
    """Images from ``root/{train,test}/<class>/*.png|jpg|jpeg`` as (N, H, W, C) uint8.

    Classes are the sorted train folder names. ``image_size`` (optional): bilinear resize to
    s x s; without it all images must share one size. ``channels`` (optional, 1 or 3): default
    1 if every image is grey, else 3 (grey images are then converted to RGB, and the count is in
    ``Dataset.notes``).
    """
    from PIL import Image

    root = _root(spec, None)
    opts = check_options(spec)
    size, channels = opts["image_size"], opts["channels"]
    classes = folder_classes(root)
    splits = {}
    for split in ("train", "test"):
        items = []
        for label, name in enumerate(classes):
            items.extend((p, label) for p in _image_files(root / split / name))
        splits[split] = items

    first = splits["train"][0][0]
    unreadable = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

    def bad_image(path: Path, exc: Exception) -> DatasetError:
        return DatasetError(f"cannot read image {path} ({type(exc).__name__}: {exc}); replace or delete the file")

    # Header pass (Image.open reads no pixels): every image's mode decides the layout. Like
    # torchvision's ImageFolder and fastai, colour unless told otherwise: grey only when every
    # image is grey (or `channels: 1`), so a grey file that sorts first cannot turn a colour
    # dataset grey.
    modes: dict[Path, str] = {}
    for items in splits.values():
        for path, _ in items:
            try:
                with Image.open(path) as im:
                    modes[path] = im.mode
                    if path == first:
                        first_size = im.size
            except unreadable as exc:
                raise bad_image(path, exc) from exc
    if channels is None:
        channels = 1 if all(m in _GREY_MODES for m in modes.values()) else 3
    mode = "L" if channels == 1 else "RGB"
    converted = Counter(m for m in modes.values() if m != mode)
    parts = ", ".join(f"{n} from {m}" for m, n in sorted(converted.items()))
    notes = [f"{sum(converted.values())} of {len(modes)} images converted to {mode}" + (f" ({parts})" if parts else "")]
    width, height = (size, size) if size else first_size

    def read(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as im:
                if size:
                    im = _to_mode(im, mode).resize((size, size), Image.Resampling.BILINEAR)
                elif im.size != (width, height):
                    raise DatasetError(
                        f"image {path} is {im.size[0]}x{im.size[1]} but {first} is {width}x{height}; "
                        f"set `image_size` for this dataset in the config to resize all images to one size"
                    )
                else:
                    im = _to_mode(im, mode)
                return np.asarray(im).reshape(height, width, channels)
        except unreadable as exc:
            raise bad_image(path, exc) from exc

    out = {}
    for split, items in splits.items():
        # preallocate: stacking 60k small arrays at the end would double peak memory and time
        x = np.empty((len(items), height, width, channels), dtype=np.uint8)
        y = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))
        for i, (path, _) in enumerate(items):
            x[i] = read(path)
        out[split] = (x, y)
    return Dataset(out["train"][0], out["train"][1], out["test"][0], out["test"][1], classes, notes)


# ---------------------------------------------------------------------------------------------
# registry and cache

SOURCES: dict[str, Callable[[dict], Dataset]] = {
    "cifar10": _load_cifar10,
    "mnist": _load_mnist,
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
    "folder": _load_folder,
}


def load_source(spec: dict) -> Dataset:
    """Read the dataset that ``spec["source"]`` names, with the options in ``spec``."""
    source = spec.get("source") if isinstance(spec, dict) else None
    if source not in SOURCES:
        raise DatasetError(f"unknown dataset source {source!r}; known sources: {', '.join(sorted(SOURCES))}")
    ds = SOURCES[source](spec)
    _check_dataset(ds, f"dataset source {source!r}", "this is a bug in dmlbench, please report it")
    return ds


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def save_npz(ds: Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` atomically as an uncompressed npz (classes as a '<U' string array)."""
    _check_dataset(ds, f"dataset to be saved as {path}", "this is a bug in dmlbench, please report it")
    write_npz(
        path,
        x_train=ds.x_train,
        y_train=ds.y_train,
        x_test=ds.x_test,
        y_test=ds.y_test,
        classes=np.array(ds.classes, dtype=str),
    )


def load_npz(path: str | os.PathLike) -> Dataset:
    """Read a Dataset written by :func:`save_npz`, checking keys, dtypes and shapes."""
    path = Path(path)
    fix = "rerun `dmlbench prepare` to rebuild it"
    if not path.is_file():
        raise DatasetError(f"prepared dataset {path} does not exist; {fix}")
    try:
        # own the handle: np.load leaks it when the zip is truncated. allow_pickle=False: a cache
        # file must not be able to run code
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetError(f"prepared dataset {path} lacks {', '.join(missing)}; {fix}")
            arrays = {k: npz[k] for k in _NPZ_KEYS}
    except DatasetError:
        raise
    except Exception as exc:  # truncated zips fail as BadZipFile, ValueError, EOFError, OSError, ...
        raise DatasetError(
            f"prepared dataset {path} is truncated or corrupt ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    classes = arrays.pop("classes")
    if classes.ndim != 1 or classes.dtype.kind != "U":
        raise DatasetError(f"prepared dataset {path}: classes must be a 1-D string array; {fix}")
    ds = Dataset(classes=[str(c) for c in classes.tolist()], **arrays)
    _check_dataset(ds, f"prepared dataset {path}", fix)
    return ds
