"""Tests for dmlbench.data.sources: each source is fed files written in the official format."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmlbench.data.sources import SOURCES, Dataset, load_npz, load_source, save_npz
from dmlbench.errors import ConfigError, DatasetError

# ---------------------------------------------------------------------------------------------
# CIFAR-10

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def _dump(obj, path: Path) -> None:
    # protocol 2 with bytes keys, as the official (Python 2 cPickle) files are laid out
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar(folder: Path, n: int = 4, seed: int = 0) -> dict:
    """Write tiny official-format CIFAR-10 files; return the expected NHWC images and labels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    expected = {"x_train": [], "y_train": []}
    for name in CIFAR_FILES[:6]:
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        # official rows: 1024 R values, then 1024 G, then 1024 B, each plane row-major
        data = np.stack([np.concatenate([imgs[i, :, :, c].ravel() for c in range(3)]) for i in range(n)])
        assert data.shape == (n, 3072) and data.dtype == np.uint8
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        _dump(batch, folder / name)
        if name == "test_batch":
            expected["x_test"], expected["y_test"] = imgs, np.array(labels)
        else:
            expected["x_train"].append(imgs)
            expected["y_train"].extend(labels)
    _dump(
        {b"num_cases_per_batch": n, b"label_names": [s.encode() for s in CIFAR_NAMES], b"num_vis": 3072},
        folder / "batches.meta",
    )
    expected["x_train"] = np.concatenate(expected["x_train"])
    expected["y_train"] = np.array(expected["y_train"])
    return expected


@pytest.mark.parametrize("sub", ["", "cifar-10-batches-py"])
def test_cifar10_reads_official_pickles_in_both_layouts(tmp_path, sub):
    exp = write_cifar(tmp_path / sub if sub else tmp_path)
    ds = load_source({"source": "cifar10", "root": str(tmp_path)})
    assert ds.classes == CIFAR_NAMES
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, exp["x_train"])
    np.testing.assert_array_equal(ds.y_train, exp["y_train"])
    np.testing.assert_array_equal(ds.x_test, exp["x_test"])
    np.testing.assert_array_equal(ds.y_test, exp["y_test"])


def test_cifar10_pixel_channel_order(tmp_path):
    write_cifar(tmp_path)
    data = np.zeros((2, 3072), dtype=np.uint8)
    row, col = 2, 5
    data[1, 0 * 1024 + row * 32 + col] = 200  # R plane
    data[1, 1 * 1024 + row * 32 + col] = 50  # G plane
    data[1, 2 * 1024 + row * 32 + col] = 7  # B plane
    _dump({b"data": data, b"labels": [3, 9]}, tmp_path / "test_batch")
    ds = load_source({"source": "cifar10", "root": str(tmp_path)})
    assert ds.x_test[1, row, col].tolist() == [200, 50, 7]
    assert ds.x_test[1].sum() == 257 and ds.x_test[0].sum() == 0
    assert ds.y_test.tolist() == [3, 9]


def test_cifar10_accepts_numpy1_pickles(tmp_path):
    """The official files name numpy.core.multiarray (numpy 1); they must load under numpy 2."""
    exp = write_cifar(tmp_path)
    path = tmp_path / "data_batch_1"
    raw = path.read_bytes()
    if b"numpy._core.multiarray" in raw:
        path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()
    ds = load_source({"source": "cifar10", "root": str(tmp_path)})
    np.testing.assert_array_equal(ds.x_train, exp["x_train"])


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_pickle_that_runs_code(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    _dump({b"data": _RunsShell(marker), b"labels": [0]}, tmp_path / "data_batch_2")
    with pytest.raises(DatasetError, match="refuses to execute code from") as err:
        load_source({"source": "cifar10", "root": str(tmp_path)})
    assert str(tmp_path / "data_batch_2") in str(err.value)
    assert not marker.exists()


def test_cifar10_refuses_codecs_other_than_latin1(tmp_path):
    import codecs

    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("payload", "rot13"))

    write_cifar(tmp_path)
    _dump({b"data": Rot13(), b"labels": [0]}, tmp_path / "data_batch_4")
    with pytest.raises(DatasetError, match="data_batch_4"):
        load_source({"source": "cifar10", "root": str(tmp_path)})


def test_cifar10_truncated_pickle(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_3"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="truncated or corrupt") as err:
        load_source({"source": "cifar10", "root": str(tmp_path)})
    assert str(path) in str(err.value)


def test_cifar10_wrong_data_shape(tmp_path):
    write_cifar(tmp_path)
    _dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, tmp_path / "data_batch_5")
    with pytest.raises(DatasetError, match=r"data_batch_5.*\(N, 3072\)"):
        load_source({"source": "cifar10", "root": str(tmp_path)})


def test_cifar10_missing_names_places_and_download(tmp_path):
    root = tmp_path / "nothing"
    with pytest.raises(DatasetError) as err:
        load_source({"source": "cifar10", "root": str(root)})
    msg = str(err.value)
    assert str(root) in msg and str(root / "cifar-10-batches-py") in msg
    assert "download: true" in msg and "CIFAR-10 python version" in msg


def test_cifar10_partial_files_listed(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "test_batch").unlink()
    with pytest.raises(DatasetError, match="missing test_batch"):
        load_source({"source": "cifar10", "root": str(tmp_path)})


def test_cifar10_download_uses_torchvision_then_reads_pickles(tmp_path, monkeypatch):
    calls = []
    expected = {}

    class FakeCIFAR10:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            folder = Path(root) / "cifar-10-batches-py"
            if not folder.exists():
                expected.update(write_cifar(folder, seed=3))

    monkeypatch.setattr("torchvision.datasets.CIFAR10", FakeCIFAR10)
    root = tmp_path / "c10"
    ds = load_source({"source": "cifar10", "root": str(root), "download": True})
    assert calls == [(str(root), True, True), (str(root), False, True)]
    np.testing.assert_array_equal(ds.x_test, expected["x_test"])


def test_cifar10_download_failure_is_dataset_error(tmp_path, monkeypatch):
    class Offline:
        def __init__(self, *a, **k):
            raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.CIFAR10", Offline)
    with pytest.raises(DatasetError, match="downloading CIFAR-10 .*network is unreachable"):
        load_source({"source": "cifar10", "root": str(tmp_path), "download": True})


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (idx)

IDX = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    magic = 0x00000803 if arr.ndim == 3 else 0x00000801
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(folder: Path, gz: bool, n_train: int = 5, n_test: int = 3, seed: int = 0) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, name in IDX.items():
        raw = idx_bytes(arrays[key])
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize(
    ("sub", "gz"), [("", False), ("", True), ("raw", False), ("MNIST/raw", True), ("MNIST/raw", False)]
)
def test_mnist_reads_idx_files(tmp_path, sub, gz):
    arrays = write_idx(tmp_path / sub, gz)
    ds = load_source({"source": "mnist", "root": str(tmp_path)})
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_test.shape == (3, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train_images"])
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["test_images"])
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])
    assert ds.x_train.flags.writeable


def test_mnist_pixel_position(tmp_path):
    write_idx(tmp_path, gz=False)
    img = np.zeros((1, 28, 28), np.uint8)
    img[0, 3, 20] = 99  # row 3, column 20
    (tmp_path / IDX["test_images"]).write_bytes(idx_bytes(img))
    (tmp_path / IDX["test_labels"]).write_bytes(idx_bytes(np.array([7], np.uint8)))
    ds = load_source({"source": "mnist", "root": str(tmp_path)})
    assert ds.x_test[0, 3, 20, 0] == 99 and ds.x_test.sum() == 99
    assert ds.y_test.tolist() == [7]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _wrong_magic(path: Path) -> None:
    path.write_bytes(struct.pack(">I", 0x00000801) + path.read_bytes()[4:])


def _corrupt_gzip(path: Path) -> None:
    gz = path.with_name(path.name + ".gz")
    data = gzip.compress(path.read_bytes())
    path.unlink()
    gz.write_bytes(data[: len(data) // 2])


def _not_gzip(path: Path) -> None:
    path.with_name(path.name + ".gz").write_bytes(b"this is not gzip data at all" * 4)
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "words", "key"),
    [
        (_truncate, "truncated", "train_images"),
        (_truncate, "truncated", "test_labels"),
        (_empty, "truncated", "train_labels"),
        (_wrong_magic, "not an idx file", "train_images"),
        (_corrupt_gzip, "corrupt", "test_images"),
        (_not_gzip, "corrupt", "train_labels"),
    ],
)
def test_mnist_bad_files(tmp_path, damage, words, key):
    write_idx(tmp_path, gz=False)
    path = tmp_path / IDX[key]
    damage(path)
    with pytest.raises(DatasetError, match=words) as err:
        load_source({"source": "mnist", "root": str(tmp_path)})
    assert IDX[key] in str(err.value) and str(tmp_path) in str(err.value)


def test_mnist_image_label_count_mismatch(tmp_path):
    write_idx(tmp_path, gz=False)
    (tmp_path / IDX["train_labels"]).write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DatasetError, match="5 images but .* 4 labels"):
        load_source({"source": "mnist", "root": str(tmp_path)})


def test_mnist_missing_names_places_and_download(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_source({"source": "mnist", "root": str(tmp_path)})
    msg = str(err.value)
    for place in (tmp_path, tmp_path / "raw", tmp_path / "MNIST" / "raw"):
        assert str(place) in msg
    assert "download: true" in msg and "train-images-idx3-ubyte" in msg


def test_mnist_download_uses_torchvision_layout(tmp_path, monkeypatch):
    calls = []

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_idx(Path(root) / "MNIST" / "raw", gz=False, seed=5)

    monkeypatch.setattr("torchvision.datasets.MNIST", FakeMNIST)
    ds = load_source({"source": "mnist", "root": str(tmp_path), "download": True})
    assert calls == [(str(tmp_path), True, True)]
    assert ds.x_train.shape == (5, 28, 28, 1)


def test_fashion_mnist_classes_and_layout(tmp_path):
    arrays = write_idx(tmp_path / "FashionMNIST" / "raw", gz=True)
    ds = load_source({"source": "fashion_mnist", "root": str(tmp_path)})
    assert ds.classes == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])


FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_system_copy():
    if not FASHION_ROOT.is_dir():
        pytest.skip(f"{FASHION_ROOT} not present; install it with `apt-get install dataset-fashion-mnist`")
    ds = load_source({"source": "fashion_mnist"})
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert len(ds.classes) == 10
    assert np.bincount(ds.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(ds.y_test, minlength=10).tolist() == [1000] * 10


# ---------------------------------------------------------------------------------------------
# digits


@pytest.fixture(scope="module")
def digits16():
    return load_source({"source": "digits"})


def test_digits_shapes_and_dtypes(digits16):
    ds = digits16
    assert ds.x_train.shape == (1257, 16, 16, 1) and ds.x_test.shape == (540, 16, 16, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_test.dtype == np.int64
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0


def test_digits_split_is_stratified(digits16):
    ds = digits16
    y_all = np.concatenate([ds.y_train, ds.y_test])
    overall = np.bincount(y_all, minlength=10)
    share = np.bincount(ds.y_test, minlength=10) / overall
    assert np.all(np.abs(share - 0.3) < 0.01), share


def test_digits_deterministic_and_seeded(digits16):
    same = load_source({"source": "digits", "split_seed": 0, "image_size": 16})
    np.testing.assert_array_equal(same.x_train, digits16.x_train)
    np.testing.assert_array_equal(same.y_test, digits16.y_test)
    other = load_source({"source": "digits", "split_seed": 1})
    assert not np.array_equal(other.y_test, digits16.y_test)
    assert not np.array_equal(other.x_test, digits16.x_test)


def test_digits_image_size_and_scaling():
    from sklearn.datasets import load_digits

    native = load_source({"source": "digits", "image_size": 8, "test_fraction": 0.5})
    assert native.x_train.shape[1:] == (8, 8, 1) and len(native.x_test) == 899
    # at the native size the pixels are the sklearn values scaled 0..16 -> 0..255
    allowed = {int(round(v * 255 / 16)) for v in range(17)}
    assert set(np.unique(native.x_train).tolist()) <= allowed
    total = load_digits().images.sum() * 255 / 16
    got = float(native.x_train.sum()) + float(native.x_test.sum())
    assert abs(got - total) / total < 1e-3
    big = load_source({"source": "digits", "image_size": 24})
    assert big.x_test.shape[1:] == (24, 24, 1)
    # bilinear upscaling keeps mean brightness
    assert abs(big.x_train.mean() - native.x_train.mean()) < 3


@pytest.mark.parametrize("bad", [{"test_fraction": 1.5}, {"test_fraction": 0}, {"image_size": 0}])
def test_digits_bad_options(bad):
    with pytest.raises(ConfigError):
        load_source({"source": "digits", **bad})


# ---------------------------------------------------------------------------------------------
# folder


def save_image(path: Path, arr: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def grey_folder(root: Path, classes=("cat", "ant", "bee"), per=2, size=(6, 4)) -> dict:
    """Grey PNGs filled with a value unique to (split, class, index)."""
    values = {}
    for s, split in enumerate(("train", "test")):
        for c, name in enumerate(classes):
            # write in reverse name order: the reader must sort, not trust directory order
            for i in reversed(range(per)):
                v = 10 + 100 * s + 20 * c + i
                save_image(root / split / name / f"img{i}.png", np.full((size[1], size[0]), v, np.uint8))
                values[(split, name, i)] = v
    return values


def test_folder_grey_png(tmp_path):
    values = grey_folder(tmp_path)
    (tmp_path / "train" / "ant" / "notes.txt").write_text("not an image")
    ds = load_source({"source": "folder", "root": str(tmp_path)})
    assert ds.classes == ["ant", "bee", "cat"]
    assert ds.x_train.shape == (6, 4, 6, 1) and ds.x_train.dtype == np.uint8  # H=4, W=6
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2] and ds.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    expected = [values[("train", name, i)] for name in ds.classes for i in range(2)]
    assert ds.x_train[:, 0, 0, 0].tolist() == expected
    assert all((img == img[0, 0, 0]).all() for img in ds.x_train)
    assert ds.x_test[0, 0, 0, 0] == values[("test", "ant", 0)]


def test_folder_rgb_png_and_jpeg(tmp_path):
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for split in ("train", "test"):
        for name, rgb in colours.items():
            img = np.zeros((8, 8, 3), np.uint8) + np.array(rgb, np.uint8)
            save_image(tmp_path / split / name / "a.png", img)
            save_image(tmp_path / split / name / "b.JPG", img, quality=95)
            save_image(tmp_path / split / name / "c.jpeg", img, quality=95)
    ds = load_source({"source": "folder", "root": str(tmp_path)})
    assert ds.classes == ["blue", "green", "red"]
    assert ds.x_train.shape == (9, 8, 8, 3)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.x_train[0, 3, 3].tolist() == [0, 0, 255]  # the PNG: exact
    for img, label in zip(ds.x_train, ds.y_train):
        want = np.array(colours[ds.classes[label]])
        assert np.abs(img.astype(int) - want).max() <= 8  # JPEGs: lossy


def test_folder_channels_option(tmp_path):
    grey_folder(tmp_path)
    rgb = load_source({"source": "folder", "root": str(tmp_path), "channels": 3})
    assert rgb.x_train.shape[-1] == 3
    assert (rgb.x_train[..., 0] == rgb.x_train[..., 2]).all()
    grey = load_source({"source": "folder", "root": str(tmp_path)})
    np.testing.assert_array_equal(rgb.x_train[..., :1], grey.x_train)

    other = tmp_path / "colour"
    for split in ("train", "test"):
        save_image(other / split / "k" / "a.png", np.full((4, 4, 3), (200, 100, 50), np.uint8))
    as_grey = load_source({"source": "folder", "root": str(other), "channels": 1})
    assert as_grey.x_train.shape == (1, 4, 4, 1)
    want = Image.new("RGB", (1, 1), (200, 100, 50)).convert("L").getpixel((0, 0))
    assert as_grey.x_train[0, 0, 0, 0] == want


def test_folder_mostly_colour_is_rgb_even_when_a_grey_file_sorts_first(tmp_path):
    # 4 colour images and 1 grey per split; the grey one is the first file in sort order, which
    # used to decide the layout (the whole dataset came out grey).
    for split in ("train", "test"):
        save_image(tmp_path / split / "a" / "000_grey.png", np.full((4, 4), 77, np.uint8))
        for i in range(4):
            save_image(tmp_path / split / "a" / f"{i + 1:03d}.png", np.full((4, 4, 3), (200, 10 * i, 50), np.uint8))
    ds = load_source({"source": "folder", "root": str(tmp_path)})
    assert ds.x_train.shape == (5, 4, 4, 3)
    assert ds.x_train[0, 0, 0].tolist() == [77, 77, 77]  # grey replicated into R, G and B
    assert ds.x_train[2, 0, 0].tolist() == [200, 10, 50]  # colour untouched
    assert ds.notes == ["2 of 10 images converted to RGB (2 from L)"]
    grey = load_source({"source": "folder", "root": str(tmp_path), "channels": 1})
    assert grey.x_train.shape == (5, 4, 4, 1) and grey.notes == ["8 of 10 images converted to L (8 from RGB)"]


def test_prepare_prints_how_many_images_were_converted(tmp_path, capsys):
    from dmlbench.cli import main

    for split in ("train", "test"):
        save_image(tmp_path / "data" / split / "a" / "0.png", np.full((4, 4), 9, np.uint8))
        save_image(tmp_path / "data" / split / "a" / "1.png", np.full((4, 4, 3), 200, np.uint8))
        save_image(tmp_path / "data" / split / "b" / "0.png", np.full((4, 4, 3), 100, np.uint8))
    spec = '{"source": "folder", "root": "%s"}' % (tmp_path / "data")
    assert main(["prepare", "--spec", spec, "--dataset", "mine", "--out", str(tmp_path / "mine.npz")]) == 0
    out = capsys.readouterr().out
    assert "2 of 6 images converted to RGB (2 from L)" in out


def test_folder_16bit_grey_is_rescaled_not_clipped(tmp_path):
    arr = np.array([[0, 128 * 257], [65535, 1000]], dtype=np.uint16)
    for split in ("train", "test"):
        save_image(tmp_path / split / "only" / "a.png", arr)
    ds = load_source({"source": "folder", "root": str(tmp_path)})
    assert ds.x_train.shape == (1, 2, 2, 1)
    assert ds.x_train[0, :, :, 0].tolist() == [[0, 128], [255, 4]]


def test_folder_mixed_sizes_need_image_size(tmp_path):
    grey_folder(tmp_path, size=(6, 4))
    odd = tmp_path / "test" / "bee" / "img9.png"
    save_image(odd, np.zeros((5, 5), np.uint8))
    with pytest.raises(DatasetError, match="image_size") as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    assert str(odd) in str(err.value)
    ds = load_source({"source": "folder", "root": str(tmp_path), "image_size": 10})
    assert ds.x_train.shape == (6, 10, 10, 1) and ds.x_test.shape == (7, 10, 10, 1)
    # a constant image stays constant under bilinear resizing
    assert ds.x_test[4, 0, 0, 0] == 0 and (ds.x_test[4] == 0).all()  # img9 sorts after bee/img1
    assert (ds.x_train[0] == ds.x_train[0, 0, 0, 0]).all()


def test_folder_empty_class(tmp_path):
    grey_folder(tmp_path)
    empty = tmp_path / "train" / "dog"
    empty.mkdir()
    (tmp_path / "test" / "dog").mkdir()
    save_image(tmp_path / "test" / "dog" / "a.png", np.zeros((4, 6), np.uint8))
    with pytest.raises(DatasetError, match="holds no images") as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    assert str(empty) in str(err.value)


def test_folder_unreadable_image(tmp_path):
    grey_folder(tmp_path)
    bad = tmp_path / "test" / "cat" / "x.png"
    bad.write_bytes(b"\x00garbage, not a png" * 10)
    with pytest.raises(DatasetError, match="cannot read image") as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    assert str(bad) in str(err.value)


def test_folder_truncated_image(tmp_path):
    grey_folder(tmp_path)
    bad = tmp_path / "train" / "bee" / "img1.png"
    save_image(bad, np.random.default_rng(0).integers(0, 256, (4, 6), dtype=np.uint8))
    bad.write_bytes(bad.read_bytes()[:-30])
    with pytest.raises(DatasetError, match="cannot read image") as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    assert str(bad) in str(err.value)


def test_folder_mismatched_test_classes(tmp_path):
    grey_folder(tmp_path)
    (tmp_path / "test" / "bee").rename(tmp_path / "test" / "wasp")
    with pytest.raises(DatasetError) as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    msg = str(err.value)
    assert "missing in test: bee" in msg and "only in test: wasp" in msg


def test_folder_missing_layout(tmp_path):
    with pytest.raises(DatasetError, match="train/<class>") as err:
        load_source({"source": "folder", "root": str(tmp_path)})
    assert str(tmp_path / "train") in str(err.value)
    with pytest.raises(DatasetError, match="root"):
        load_source({"source": "folder"})


def test_folder_bad_channels(tmp_path):
    grey_folder(tmp_path)
    with pytest.raises(ConfigError, match="channels"):
        load_source({"source": "folder", "root": str(tmp_path), "channels": 2})


# ---------------------------------------------------------------------------------------------
# npz cache and registry


def small_dataset() -> Dataset:
    rng = np.random.default_rng(1)
    return Dataset(
        x_train=rng.integers(0, 256, (5, 4, 3, 3), dtype=np.uint8),
        y_train=np.array([0, 1, 2, 1, 0], np.int64),
        x_test=rng.integers(0, 256, (2, 4, 3, 3), dtype=np.uint8),
        y_test=np.array([2, 2], np.int64),
        classes=["T-shirt/top", "b", "ç"],
    )


def test_npz_round_trip(tmp_path):
    ds = small_dataset()
    path = tmp_path / "sub" / "data.npz"
    save_npz(ds, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.npz"]  # no temp files left
    with np.load(path) as raw:
        assert raw["classes"].dtype.kind == "U"
        assert sorted(raw.files) == ["classes", "x_test", "x_train", "y_test", "y_train"]
    back = load_npz(path)
    assert back.classes == ds.classes
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key))
        assert getattr(back, key).dtype == getattr(ds, key).dtype


def test_npz_truncated(tmp_path):
    path = tmp_path / "data.npz"
    save_npz(small_dataset(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="dmlbench prepare") as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_npz_missing(tmp_path):
    path = tmp_path / "absent.npz"
    with pytest.raises(DatasetError, match="dmlbench prepare") as err:
        load_npz(path)
    assert str(path) in str(err.value)


def test_npz_wrong_content(tmp_path):
    ds = small_dataset()
    path = tmp_path / "float.npz"
    np.savez(path, x_train=ds.x_train.astype(np.float32), y_train=ds.y_train, x_test=ds.x_test,
             y_test=ds.y_test, classes=np.array(ds.classes))  # fmt: skip
    with pytest.raises(DatasetError, match="x_train must be uint8"):
        load_npz(path)
    path = tmp_path / "nokeys.npz"
    np.savez(path, x_train=ds.x_train)
    with pytest.raises(DatasetError, match="lacks y_train"):
        load_npz(path)


def test_save_npz_rejects_bad_dataset(tmp_path):
    ds = small_dataset()
    ds.y_train = ds.y_train.astype(np.int32)
    with pytest.raises(DatasetError, match="y_train must be int64"):
        save_npz(ds, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_unknown_source_lists_known_ones():
    assert set(SOURCES) == {"cifar10", "mnist", "fashion_mnist", "digits", "folder"}
    with pytest.raises(DatasetError, match="unknown dataset source 'imagenet'") as err:
        load_source({"source": "imagenet"})
    for name in SOURCES:
        assert name in str(err.value)
    with pytest.raises(DatasetError, match="known sources"):
        load_source({})
