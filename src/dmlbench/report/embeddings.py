"""Section 10, Embeddings: t-SNE maps of test embeddings from models trained on all classes, and
their closed-set accuracy."""

from __future__ import annotations

from dmlbench.errors import DmlbenchError
from dmlbench.report._declare import Column, Figure, Table
from dmlbench.report._style import FACET_COLUMNS, alt, method_order, pd, require_columns, titled

TITLE = "Embeddings"
TSNE_COLUMNS = ["dataset", "method", "seed", "test_index", "label", "class_name", "x", "y"]
TSNE_PANEL = 130


def needs_tsne(config: dict) -> str | None:
    return None if config["tsne"]["enabled"] else "the closed-set models were not trained (`tsne.enabled: false`)"


def tsne_chart(tsne: pd.DataFrame):
    """t-SNE of test embeddings: one panel per method (three to a row), one block per dataset,
    colour = test class.

    Only the first (lowest) seed of each dataset is drawn. Axes are hidden: t-SNE
    coordinates have no units, and each panel has its own scales. Each dataset has its
    own class legend, in class-index order.
    """
    require_columns(tsne, TSNE_COLUMNS, "t-SNE table")
    if tsne.empty:
        raise DmlbenchError("The t-SNE table is empty: no model trained on all classes was embedded.")
    rows = []
    for dataset, grp in tsne.groupby("dataset", sort=True):
        data = grp[grp["seed"] == grp["seed"].min()][TSNE_COLUMNS].reset_index(drop=True)
        classes = data[["label", "class_name"]].drop_duplicates().sort_values("label")["class_name"].tolist()
        seed = int(data["seed"].iloc[0])
        methods = method_order(data["method"].unique())
        rows.append(
            alt.Chart(data)
            .mark_circle(size=5, opacity=0.7)
            .encode(
                x=alt.X("x:Q", axis=None, scale=alt.Scale(zero=False)),
                y=alt.Y("y:Q", axis=None, scale=alt.Scale(zero=False)),
                color=alt.Color(
                    "class_name:N",
                    sort=classes,
                    title=f"{dataset} class",
                    scale=alt.Scale(scheme="tableau10" if len(classes) <= 10 else "category20"),
                    legend=alt.Legend(symbolOpacity=1),
                ),
                tooltip=["method:N", "class_name:N", "test_index:Q"],
            )
            .properties(width=TSNE_PANEL, height=TSNE_PANEL)
            .facet(
                facet=alt.Facet("method:N", sort=methods, title=None),
                columns=min(FACET_COLUMNS, len(methods)),
                spacing=8,
            )
            .resolve_scale(x="independent", y="independent")
            .properties(title=alt.TitleParams(f"{dataset}, seed {seed}", anchor="start"))
        )
    return titled(
        alt.vconcat(*rows, spacing=16).resolve_scale(color="independent"),
        "t-SNE of test embeddings",
        "models trained on all classes",
    )


FIGURES = (
    Figure(
        "fig-tsne",
        "t-SNE maps (cosine metric) of test embeddings from models trained on all classes, one panel per method, "
        "coloured by class.",
        lambda v: tsne_chart(v.t["tsne"]),
        needs_tsne,
    ),
)
TABLES = (
    Table(
        "tbl-closed-set",
        "Closed-set test accuracy of the models trained on all classes (every test image); – for a pair or tuple "
        "loss, which has no classifier.",
        lambda v: v.t["closed_set"],
        needs_tsne,
        columns=(
            Column("dataset", "dataset"),
            Column("method", "method"),
            Column("seed", "seed", "d", 0.5),
            Column("accuracy", "accuracy", ".3f"),
            Column("n_test", "test images", "d"),
            Column("epochs", "epochs", "d", 0.6),
        ),
    ),
)
