"""Image figures (dmlbench.report.worst_misses, embeddings): data URLs, the worst-miss frame and grid, t-SNE panels."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import altair as alt
import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc
from PIL import Image

from dmlbench.errors import DmlbenchError
from dmlbench.report import embeddings
from dmlbench.report import worst_misses as gallery  # the name worst_misses is a fixture here

CLASSES = ["zero", "one", "two"]
N_TRAIN, N_TEST = 20, 15


def decode(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    raw = base64.b64decode(url[len(prefix) :])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(raw))


# Every image is one flat grey level that names it: train i -> i, test i -> 100 + i.
X_TRAIN = np.repeat(np.arange(N_TRAIN, dtype=np.uint8), 16).reshape(N_TRAIN, 4, 4)
Y_TRAIN = np.arange(N_TRAIN) % len(CLASSES)
X_TEST = np.repeat(np.arange(100, 100 + N_TEST, dtype=np.uint8), 16).reshape(N_TEST, 4, 4)


def anomaly_index(method: str, case: int, rank: int) -> int:
    return (3 * case + rank + (7 if method == "arcface" else 0)) % N_TEST


def nearest_index(method: str, case: int, rank: int) -> int:
    return (2 * rank + case + (1 if method == "arcface" else 0)) % N_TRAIN


@pytest.fixture(scope="module")
def worst_misses() -> pd.DataFrame:
    rows = []
    for method in ["arcface", "conventional"]:  # not the study's order
        for case in [0, 1]:
            for scorer in ["cosine_k1", "euclidean_k1"]:
                for rank in range(1, 8):
                    ti = anomaly_index(method, case, rank)
                    rows.append(
                        dict(
                            dataset="digits",
                            n_anomaly=1,
                            method=method,
                            n_per_class="all",
                            seed=0,
                            case=case,
                            scorer=scorer,
                            rank=rank,
                            test_index=ti,
                            label=ti % 3,
                            class_name=CLASSES[ti % 3],
                            score=0.01 * rank + (0.5 if scorer == "euclidean_k1" else 0.0),
                            nearest_index=nearest_index(method, case, rank),
                        )
                    )
    return pd.DataFrame(rows)


def frame(worst_misses: pd.DataFrame, **kwargs) -> pd.DataFrame:
    args = dict(dataset="digits", n_anomaly=1, case=1, seed=0) | kwargs
    return gallery.worst_miss_frame(worst_misses, X_TRAIN, Y_TRAIN, X_TEST, CLASSES, **args)


def render_png(chart: alt.TopLevelMixin) -> Image.Image:
    return Image.open(io.BytesIO(vlc.vegalite_to_png(chart.to_dict(), ppi=72))).convert("RGB")


# --------------------------------------------------------------------------- data URLs


@pytest.mark.parametrize(
    "shape,size,mode",
    [
        ((8, 8), (64, 64), "L"),
        ((8, 6, 1), (66, 88), "L"),
        ((28, 28), (84, 84), "L"),
        ((32, 32, 3), (64, 64), "RGB"),
        ((70, 100, 3), (100, 70), "RGB"),
    ],
)
def test_image_data_url_decodes_to_the_image_enlarged(shape, size, mode):
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    picture = decode(gallery.image_data_url(image))
    assert picture.size == size and picture.mode == mode  # (width, height)
    pixels = np.asarray(picture)
    factor = size[1] // shape[0]
    # Nearest neighbour: every source pixel is a factor × factor block.
    assert np.array_equal(pixels[::factor, ::factor], image.reshape(pixels[::factor, ::factor].shape))
    assert np.array_equal(pixels[factor - 1 :: factor, factor - 1 :: factor], pixels[::factor, ::factor])


@pytest.mark.parametrize("image", [np.zeros((8, 8), dtype=np.float32), np.zeros((8, 8, 4), dtype=np.uint8)])
def test_image_data_url_rejects_other_arrays(image):
    with pytest.raises(DmlbenchError, match="uint8"):
        gallery.image_data_url(image)


# --------------------------------------------------------------------------- worst misses


def test_worst_miss_frame_pairs_each_anomaly_with_its_nearest_normal(worst_misses):
    out = frame(worst_misses, n=5)
    assert list(out.columns) == ["method", "rank", "kind", "class_name", "score", "index", "image"]
    assert len(out) == 2 * 5 * 2  # methods × ranks × kinds
    expected = []
    for method in ["conventional", "arcface"]:  # study order
        for rank in range(1, 6):
            ti, ni = anomaly_index(method, 1, rank), nearest_index(method, 1, rank)
            expected.append((method, rank, "anomaly", CLASSES[ti % 3], 0.01 * rank, ti))
            expected.append((method, rank, "nearest normal", CLASSES[Y_TRAIN[ni]], 0.01 * rank, ni))
    got = list(out.drop(columns="image").itertuples(index=False, name=None))
    assert [g[:4] + g[5:] for g in got] == [e[:4] + e[5:] for e in expected]
    assert out["score"].tolist() == pytest.approx([e[4] for e in expected])
    # The images are the right arrays: test i is grey 100 + i, train i is grey i; 4 px -> 64 px.
    for row in out.itertuples(index=False):
        picture = decode(row.image)
        assert picture.size == (64, 64)
        grey = 100 + row.index if row.kind == "anomaly" else row.index
        assert set(np.unique(np.asarray(picture))) == {grey}


def test_worst_miss_frame_selects_scorer_and_n(worst_misses):
    out = frame(worst_misses, scorer="euclidean_k1", n=2, case=0)
    assert out["rank"].tolist() == [1, 1, 2, 2] * 2
    assert out["score"].tolist() == pytest.approx([0.51, 0.51, 0.52, 0.52] * 2)
    assert out["index"].tolist()[:2] == [anomaly_index("conventional", 0, 1), nearest_index("conventional", 0, 1)]


def test_worst_miss_frame_names_what_exists(worst_misses):
    with pytest.raises(
        DmlbenchError, match=r"case=4.*cases \[0, 1\], seeds \[0\] and scorers \['cosine_k1', 'euclidean_k1'\]"
    ):
        frame(worst_misses, case=4)
    with pytest.raises(DmlbenchError, match=r"scorer='lof'"):
        frame(worst_misses, scorer="lof")
    with pytest.raises(DmlbenchError, match=r"n_anomaly=2.*\('digits', 1, 'all'\)"):
        frame(worst_misses, n_anomaly=2)
    with pytest.raises(DmlbenchError, match="different runs"):
        gallery.worst_miss_frame(
            worst_misses, X_TRAIN[:3], Y_TRAIN[:3], X_TEST, CLASSES, dataset="digits", n_anomaly=1, case=0, seed=0
        )


def test_worst_misses_chart_is_an_image_grid(worst_misses):
    out = frame(worst_misses, n=3)
    chart = gallery.worst_misses_chart(out, dataset="digits", n_anomaly=1, case=1, seed=0)
    spec = chart.to_dict()  # validates against the Vega-Lite schema
    # One panel per method, two to a row; ranks across, the anomaly above its neighbour.
    assert spec["facet"]["field"] == "method" and spec["facet"]["sort"] == ["conventional", "arcface"]
    assert spec["columns"] == 2
    image, caption = spec["spec"]["layer"]
    assert image["encoding"]["x"]["field"] == "rank"
    assert image["mark"]["type"] == "image" and image["encoding"]["url"]["field"] == "image"
    assert caption["mark"]["type"] == "text" and caption["encoding"]["text"]["field"] == "class_name"
    assert image["encoding"]["y"]["scale"]["domain"] == ["anomaly", "nearest normal"]
    rows = spec["datasets"][spec["data"]["name"]]
    assert len(rows) == len(out) and [r["image"] for r in rows] == out["image"].tolist()
    assert spec["usermeta"]["dmlbench"] == {
        "scorer": "cosine_k1",
        "n_per_class": "all",
        "dataset": "digits",
        "n_anomaly": 1,
        "case": 1,
        "seed": 0,
    }


def test_worst_misses_chart_draws_the_images_in_png_and_svg():
    """vl-convert draws data: URLs: count the pixels of solid red anomalies and green neighbours."""
    red = gallery.image_data_url(np.full((8, 8, 3), (255, 0, 0), dtype=np.uint8))
    green = gallery.image_data_url(np.full((8, 8, 3), (0, 255, 0), dtype=np.uint8))
    out = pd.DataFrame(
        [
            dict(
                method="cosface",
                rank=r,
                kind=k,
                class_name="c",
                score=0.1,
                index=r,
                image=red if k == "anomaly" else green,
            )
            for r in (1, 2)
            for k in gallery.KIND_ORDER
        ]
    )  # one method: the grid still works
    chart = gallery.worst_misses_chart(out, dataset="digits", n_anomaly=3, case=0, seed=2, scorer="euclidean_k1")
    pixels = np.asarray(render_png(chart)).reshape(-1, 3)
    area = gallery.IMAGE_SIZE**2
    for colour in [(255, 0, 0), (0, 255, 0)]:
        drawn = np.all(pixels == colour, axis=1).sum()
        assert drawn == pytest.approx(2 * area, rel=0.1)
    svg = ET.fromstring(vlc.vegalite_to_svg(chart.to_dict()))
    hrefs = [e.get("{http://www.w3.org/1999/xlink}href") for e in svg.iter("{http://www.w3.org/2000/svg}image")]
    assert sorted(hrefs) == sorted([red, red, green, green])


def test_worst_misses_chart_rejects_an_empty_frame():
    empty = pd.DataFrame(columns=["method", "rank", "kind", "class_name", "score", "index", "image"])
    with pytest.raises(DmlbenchError, match="empty"):
        gallery.worst_misses_chart(empty, dataset="digits", n_anomaly=1, case=0, seed=0)


# --------------------------------------------------------------------------- t-SNE


def tsne_frame(datasets=("mnist", "cifar10"), methods=("arcface", "conventional"), seeds=(3, 1)) -> pd.DataFrame:
    rows = []
    for dataset in datasets:
        for method in methods:
            for seed in seeds:
                for i in range(6):
                    rows.append(
                        dict(
                            dataset=dataset,
                            method=method,
                            seed=seed,
                            test_index=i,
                            label=i % 3,
                            class_name=f"{dataset}-{CLASSES[i % 3]}",
                            x=float(i + seed),
                            y=float(-i),
                        )
                    )
    return pd.DataFrame(rows)


def test_tsne_chart_has_one_row_per_dataset_and_the_first_seed():
    chart = embeddings.tsne_chart(tsne_frame())
    spec = chart.to_dict()
    assert spec["resolve"]["scale"]["color"] == "independent"
    assert [row["title"]["text"] for row in spec["vconcat"]] == ["cifar10, seed 1", "mnist, seed 1"]
    for dataset, row in zip(["cifar10", "mnist"], spec["vconcat"]):
        assert row["facet"]["sort"] == ["conventional", "arcface"] and row["columns"] == 2
        encoding = row["spec"]["encoding"]
        assert encoding["x"]["axis"] is None and encoding["y"]["axis"] is None
        assert encoding["color"]["sort"] == [f"{dataset}-{c}" for c in CLASSES]  # class-index order
        data = spec["datasets"][row["data"]["name"]]
        assert len(data) == 2 * 6 and {r["seed"] for r in data} == {1} and {r["dataset"] for r in data} == {dataset}
    assert render_png(chart).size[0] > 300


def test_tsne_chart_with_one_method_and_dataset():
    chart = embeddings.tsne_chart(tsne_frame(datasets=("digits",), methods=("centerloss",), seeds=(0,)))
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 1
    assert render_png(chart).size[0] > 150
    with pytest.raises(DmlbenchError, match="empty"):
        embeddings.tsne_chart(tsne_frame().iloc[:0])


@pytest.mark.parametrize("n_methods", [2, 6, 7, 9, 12])
def test_worst_misses_chart_fits_a_printed_page_for_any_number_of_methods(n_methods):
    """With print fonts (1 chart px = 1 pt, scaled down to the text width when wider) the grid of
    five ranks per method is at most MAX_CHART_HEIGHT high on the page, its smallest font (9 px)
    stays at 7 pt or more, and up to six methods the images keep their full size."""
    from dmlbench.report._style import MIN_PRINT_FONT_PT, PRINT_WIDTH_PT, print_config

    grey = gallery.image_data_url(np.full((8, 8), 128, dtype=np.uint8))
    out = pd.DataFrame(
        [
            dict(method=f"m{m:02d}", rank=r, kind=k, class_name="c", score=0.1, index=r, image=grey)
            for m in range(n_methods)
            for r in range(1, 6)
            for k in gallery.KIND_ORDER
        ]
    )
    chart = gallery.worst_misses_chart(out, dataset="digits", n_anomaly=1, case=0, seed=0)
    width, height = Image.open(io.BytesIO(vlc.vegalite_to_png(print_config(chart).to_dict(), scale=1))).size
    scale = min(1.0, PRINT_WIDTH_PT / width)
    assert height * scale <= gallery.MAX_CHART_HEIGHT
    assert 9 * scale >= MIN_PRINT_FONT_PT
    per_row, size = gallery.grid_layout(n_methods)
    assert (size == gallery.IMAGE_SIZE) == (n_methods <= 6) and per_row == (2 if n_methods <= 6 else 3)
