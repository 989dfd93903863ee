"""Issue 28: `dmlbench figures` and `render` take the scorer from the results' own config
(report.scorer of <results>/config.yaml) unless --scorer is given, and `--results` is accepted
after the subcommand as well as before it."""

from pathlib import Path

import pytest
import yaml

from dmlbench import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv, results",
    [
        (["render"], "results"),
        (["--results", "a", "render"], "a"),
        (["render", "--results", "b"], "b"),
        (["--results", "a", "figures", "--results", "b"], "b"),
        (["progress", "--results", "c"], "c"),
    ],
)
def test_results_before_or_after_the_subcommand(argv, results):
    assert cli.build_parser().parse_args(argv).results == results


def _results(tmp_path, scorer="euclidean_k5"):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["report"] = {"scorer": scorer}
    results = tmp_path / "run" / "results"
    results.mkdir(parents=True)
    (results / "config.yaml").write_text(yaml.safe_dump(cfg))
    return results


def test_render_and_figures_take_the_runs_report_scorer(tmp_path, monkeypatch):
    import dmlbench.report.figures as figures
    import dmlbench.report.render as render

    seen = {}
    monkeypatch.setattr(
        render, "render_report", lambda qmd, results, scorer, **kw: seen.setdefault("render", scorer) and []
    )
    monkeypatch.setattr(
        figures, "write_figures", lambda tables, out, scorer, **kw: seen.setdefault("figures", scorer) and []
    )
    results = _results(tmp_path)
    assert cli.main(["render", "--results", str(results)]) == 0
    assert cli.main(["figures", "--results", str(results)]) == 0
    assert seen == {"render": "euclidean_k5", "figures": "euclidean_k5"}
    seen.clear()
    assert cli.main(["render", "--results", str(results), "--scorer", "cosine_k1"]) == 0
    assert seen == {"render": "cosine_k1"}


def test_without_a_config_the_scorer_must_be_given(tmp_path, capsys):
    assert cli.main(["render", "--results", str(tmp_path)]) == 2
    assert "the run's report.scorer is unknown; give --scorer" in capsys.readouterr().err
