"""Section 9, Worst misses: per method the anomalies scored most normal, each beside its nearest
normal training image.

Images travel inside the Vega-Lite spec as PNG ``data:`` URLs, which browsers and vl-convert
(SVG, PNG) both draw.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Figure, Table
from dmlbench.report._style import (
    FONT,
    PRINT_WIDTH_PT,
    alt,
    condition_label,
    method_order,
    pd,
    require_columns,
    selection,
    titled,
)

TITLE = "Worst misses"
WORST_MISSES_COLUMNS = [
    "dataset",
    "n_anomaly",
    "method",
    "n_per_class",
    "seed",
    "case",
    "scorer",
    "rank",
    "test_index",
    "label",
    "class_name",
    "score",
    "nearest_index",
]
KIND_ORDER = ("anomaly", "nearest normal")

# Images are encoded at least this many pixels on their short side (nearest neighbour), so
# small ones (8×8 digits) stay sharp; the chart draws them IMAGE_SIZE chart pixels wide.
MIN_IMAGE_PIXELS = 64
IMAGE_SIZE = 40
#: The printed chart's height budget in points: an A4 page's text height (about 700 pt) less a
#: two-line caption, so the figure and its caption fit one page (print fonts: 1 chart px = 1 pt
#: until the chart is wider than the text, PRINT_WIDTH_PT, and is scaled down to it).
MAX_CHART_HEIGHT = 650
_FIXED_HEIGHT = 70  # title, subtitle and the rank axis
_ROW_EXTRA = 43  # a panel's header and the spacing between rows
_FIXED_WIDTH = 23  # the kind axis
_MIN_SCALE = 0.8  # the print scale that keeps the smallest font (9 px) above 7 pt


def grid_layout(n_methods: int, n_ranks: int = 5) -> tuple[int, int]:
    """(panels per row, chart pixels per image) for ``n_methods`` panels of ``n_ranks`` columns:
    two panels a row at :data:`IMAGE_SIZE` up to six methods; beyond, three a row, the images
    as large as the page's width (scaled by at least 0.8) and height (:data:`MAX_CHART_HEIGHT`)
    allow, at least 16."""
    per_row = 2 if n_methods <= 6 else 3
    rows = -(-n_methods // per_row)
    by_height = ((MAX_CHART_HEIGHT - _FIXED_HEIGHT) / max(rows, 1) - _ROW_EXTRA) / 2 - 16
    by_width = ((PRINT_WIDTH_PT / _MIN_SCALE - _FIXED_WIDTH - (per_row - 1) * 16) / (per_row * n_ranks)) - 8
    return per_row, int(max(16, min(IMAGE_SIZE, by_height, by_width)))


def image_data_url(image: np.ndarray) -> str:
    """A uint8 image (H×W, H×W×1 or H×W×3) as a ``data:image/png;base64,...`` URL.

    Images whose short side is under 64 px are enlarged by an integer factor with nearest
    neighbour sampling, so every pixel stays a sharp square.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise DmlbenchError(
            f"image_data_url needs a uint8 H×W, H×W×1 or H×W×3 array; got {image.dtype} of shape {image.shape}."
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    from PIL import Image

    picture = Image.fromarray(image)
    factor = -(-MIN_IMAGE_PIXELS // min(image.shape[:2]))  # ceiling division
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")  # in memory: a BytesIO, no file
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def worst_miss_frame(
    worst_misses: pd.DataFrame,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    classes: Sequence[str],
    *,
    dataset: str,
    n_anomaly: int,
    case: int,
    seed: int,
    scorer: str = "cosine_k1",
    n_per_class: str = "all",
    n: int = 5,
) -> pd.DataFrame:
    """The ``n`` worst misses of every method for one condition, case, seed and scorer, with images.

    One row per (method, rank, kind), kind "anomaly" (the test image) then "nearest normal"
    (its nearest reference image, from the dataset's train split). Columns: method, rank,
    kind, class_name, score (the anomaly's score on both rows), index (``test_index`` or
    ``nearest_index``), image (PNG data URL). Methods in the study's order.
    """
    require_columns(worst_misses, WORST_MISSES_COLUMNS, "worst_misses.parquet")
    condition = worst_misses[
        (worst_misses["dataset"] == dataset)
        & (worst_misses["n_anomaly"] == int(n_anomaly))
        & (worst_misses["n_per_class"].astype(str) == str(n_per_class))
    ]
    if condition.empty:
        keys = zip(worst_misses["dataset"], worst_misses["n_anomaly"], worst_misses["n_per_class"])
        present = sorted({(d, int(a), str(p)) for d, a, p in keys})
        raise DmlbenchError(
            f"worst_misses.parquet has no rows for dataset={dataset!r}, n_anomaly={int(n_anomaly)}, "
            f"n_per_class={str(n_per_class)!r}; it has (dataset, n_anomaly, n_per_class) {present}."
        )
    selected = condition[
        (condition["case"] == int(case))
        & (condition["seed"] == int(seed))
        & (condition["scorer"] == scorer)
        & (condition["rank"] <= n)
    ]
    if selected.empty:
        raise DmlbenchError(
            f"worst_misses.parquet has no rows for case={int(case)}, seed={int(seed)}, scorer={scorer!r} "
            f"of {dataset} with {int(n_anomaly)} anomaly classes (n_per_class {n_per_class}); it has cases "
            f"{sorted(condition['case'].unique().tolist())}, seeds {sorted(condition['seed'].unique().tolist())} "
            f"and scorers {sorted(condition['scorer'].unique().tolist())}."
        )
    if selected["test_index"].max() >= len(x_test) or selected["nearest_index"].max() >= len(x_train):
        raise DmlbenchError(
            f"worst_misses.parquet indexes images past the dataset's arrays ({len(x_test)} test, "
            f"{len(x_train)} train images): the tables and results/data/{dataset}.npz are from different runs."
        )
    methods = method_order(selected["method"].unique())
    selected = selected.assign(_m=selected["method"].map(methods.index)).sort_values(["_m", "rank"])
    rows = []
    for r in selected.itertuples(index=False):
        common = {"method": r.method, "rank": int(r.rank), "score": float(r.score)}
        rows.append(
            {
                **common,
                "kind": KIND_ORDER[0],
                "class_name": str(r.class_name),
                "index": int(r.test_index),
                "image": image_data_url(x_test[r.test_index]),
            }
        )
        rows.append(
            {
                **common,
                "kind": KIND_ORDER[1],
                "class_name": str(classes[int(y_train[r.nearest_index])]),
                "index": int(r.nearest_index),
                "image": image_data_url(x_train[r.nearest_index]),
            }
        )
    return pd.DataFrame(rows, columns=["method", "rank", "kind", "class_name", "score", "index", "image"])


def worst_misses_chart(
    frame: pd.DataFrame,
    *,
    dataset: str,
    n_anomaly: int,
    case: int,
    seed: int,
    scorer: str = "cosine_k1",
    n_per_class: str = "all",
):
    """Image grid of ``worst_miss_frame``: one panel per method (two or three to a row, the images
    sized so that the grid fits one printed page: :func:`grid_layout`), one column per rank.

    In each column the anomaly (top) sits above its nearest normal training image, each with its
    class name underneath; the keyword arguments name the selection in the title.
    """
    require_columns(frame, ["method", "rank", "kind", "class_name", "score", "index", "image"], "worst-miss frame")
    if frame.empty:
        raise DmlbenchError("The worst-miss frame is empty; build it with worst_miss_frame.")
    methods = method_order(frame["method"].unique())
    per_row, size = grid_layout(len(methods), frame["rank"].nunique())  # every panel on one printed page
    row_height = size + 16  # image, one line of caption, a gap
    centres = [row_height / 2 - 5, 3 * row_height / 2 - 5]  # of the two images in a column
    base = alt.Chart().encode(
        x=alt.X(
            "rank:O",
            title="rank (1 = lowest anomaly score)",
            axis=alt.Axis(labelAngle=0, ticks=False, domain=False, orient="top"),
        ),
        y=alt.Y(
            "kind:N",
            title=None,
            scale=alt.Scale(type="point", domain=list(KIND_ORDER), range=centres, padding=0),
            # smaller images, shorter rows: "nearest normal" would run into "anomaly" (the caption says it)
            axis=alt.Axis(
                ticks=False,
                domain=False,
                labelAngle=-90,
                labelAlign="center",
                labelBaseline="bottom",
                labelExpr="datum.label"
                if size >= IMAGE_SIZE
                else "datum.label == 'nearest normal' ? 'normal' : datum.label",
            ),
        ),
        tooltip=["method:N", "rank:O", "kind:N", "class_name:N", alt.Tooltip("score:Q", format=".4f"), "index:Q"],
    )
    # aria=False: an image's accessible label would otherwise repeat its whole data URL.
    images = base.mark_image(width=size, height=size, align="center", baseline="middle", aria=False).encode(
        url="image:N"
    )
    captions = base.mark_text(baseline="top", dy=size / 2 + 1, fontSize=FONT["mark"], limit=size + 8).encode(
        text="class_name:N"
    )
    chart = (
        alt.layer(images, captions, data=frame)
        .properties(width=alt.Step(size + 8), height=2 * row_height, view=alt.ViewBackground(stroke=None))
        .facet(
            facet=alt.Facet("method:N", sort=methods, title=None, header=alt.Header(labelAngle=0)),
            columns=min(per_row, len(methods)),
            spacing={"row": 10, "column": 16},
        )
    )
    return titled(
        chart,
        "Worst misses",
        [
            condition_label(dataset, n_anomaly),
            f"case {int(case)}, seed {int(seed)}, " + selection(scorer=scorer, n_per_class=n_per_class),
        ],
        scorer=scorer,
        n_per_class=n_per_class,
        dataset=dataset,
        n_anomaly=int(n_anomaly),
        case=int(case),
        seed=int(seed),
    )


FIGURES = (
    Figure(
        "fig-worst-misses",
        "The lowest-scored anomalies of each method in one case, each above the normal training image nearest to "
        "it in the embedding, with their classes.",
        lambda v: worst_misses_chart(v.study.worst_miss_frame(v.scorer), **v.study.worst_miss_selection(v.scorer)),
    ),
)
TABLES = (
    Table(
        "tbl-worst-misses",
        "The worst misses of the figure: method, rank, anomaly or nearest normal image, class, score and image index.",
        lambda v: v.study.worst_miss_frame(v.scorer).drop(columns="image"),
        printed=False,
    ),
)
