"""Issue 28: `dmlbench progress` reads the job records and logs of a run and says what is done,
running and left, with an estimate (dmlbench.config.progress), worked by hand on config/test.yaml:
3 train jobs (grid nall, annex n20, closed-set a0) and 2 score jobs."""

import json
import os
from pathlib import Path

from dmlbench.cli import main
from dmlbench.config import load_config
from dmlbench.config.progress import summary

ROOT = Path(__file__).resolve().parents[3]


def _record(results: Path, rule: str, group: str, wall_s: float) -> None:
    path = results / "jobs" / rule / f"{group}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rule": rule, "wall_s": wall_s, "runs": []}))


def _log(logs: Path, rule: str, group: str, text: str, created: float) -> None:
    path = logs / rule / f"{group}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (created, created))


def test_progress_counts_done_running_and_left_and_estimates_from_the_jobs_done(tmp_path):
    config = load_config(ROOT / "config" / "test.yaml")
    results, logs, now = tmp_path / "results", tmp_path / "logs", 10_000.0
    _record(results, "train", "digits/a3/nall/s0", 300.0)  # one train job done in 5 min
    epoch = (
        "arcface_margin0.3 case 1 (2/2): epoch 1/1, loss 0.1, val loss 0.2, val acc 0.900, 1.0s; ~20s left in this run"
    )
    _log(logs, "train", "digits/a3/n20/s0", f"2026-01-01 10:00:00,000 dmlbench.train.fastai_parts {epoch}\n", now - 120)
    text = summary(config, results, logs, now=now)
    assert text.splitlines()[:4] == [
        "train: 1 of 3 jobs done, 1 running, 1 left",
        f"  running digits/a3/n20/s0 (for 2m00s; log {logs}/train/digits/a3/n20/s0.log)",
        f"    {epoch}",
        "  5m00s per train job done (mean of 1)",
    ]
    assert "score: 0 of 2 jobs done, 0 running, 2 left" in text
    assert "estimate: none yet for score (no job of it has finished)" in text
    # with a score job done (10 s): left = train 300 x 1 + (300 - 120) for the running one, score 10 x 1
    _record(results, "score", "digits/a3/nall/s0", 10.0)
    text = summary(config, results, logs, now=now)
    assert "estimate: ~8m10s left" in text  # 300 + 180 + 10 = 490 s
    assert f"logs: {logs}/train/<dataset>/a<n>/n<N>/s<seed>.log" in text


def test_the_command_reads_the_runs_snapshot(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "config.yaml").write_text((ROOT / "config" / "test.yaml").read_text())
    assert main(["progress", "--results", str(results), "--logs", str(tmp_path / "logs")]) == 0
    assert capsys.readouterr().out.startswith("train: 0 of 3 jobs done, 0 running, 3 left\n")
    assert main(["--results", str(tmp_path / "none"), "progress"]) == 2
    assert "config.yaml does not exist yet" in capsys.readouterr().err
