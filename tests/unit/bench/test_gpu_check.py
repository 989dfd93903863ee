"""bench/gpu_check.sh, the five-minute device check, run here with ``--device cpu`` at its tiny
size so that it cannot rot before a GPU comes: every step runs and writes what it measured to
gpu_check.json (the CUDA-only tests skip, the compile uses dynamo's eager backend, the demo is a
Snakemake dry run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu_check import cuda_only_tests, junit_summary

ROOT = Path(__file__).resolve().parents[3]


def test_the_cuda_only_tests_are_found_by_their_skipif(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest, torch\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')\n"
        "def test_on_gpu(): pass\n"
        "@pytest.mark.parametrize('a', [1])\n"
        "def test_anywhere(a): pass\n"
    )
    assert cuda_only_tests(tmp_path / "tests") == ["tests/test_x.py::test_on_gpu"]
    found = cuda_only_tests()
    assert "tests/unit/train/test_training_speed.py::test_no_cuda_synchronisation_inside_an_epoch" in found
    assert (
        "tests/unit/heads/test_head_inputs.py::test_label_range_on_cuda_is_a_device_side_assert_without_host_sync"
        in found
    )


def test_junit_summary_sorts_tests_by_outcome(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite><testcase classname="a" name="ok"/>'
        '<testcase classname="a" name="bad"><failure message="x"/></testcase>'
        '<testcase classname="a" name="err"><error message="x"/></testcase>'
        '<testcase classname="a" name="skip"><skipped message="x"/></testcase></testsuite></testsuites>'
    )
    assert junit_summary(xml) == {
        "counts": {"passed": 1, "failed": 2, "skipped": 1},
        "passed": ["a::ok"],
        "failed": ["a::bad", "a::err"],
        "skipped": ["a::skip"],
    }


@pytest.mark.slow
def test_the_device_check_runs_every_step_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(
        [str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = summary["steps"]
    assert summary["ok"] and list(steps) == ["cuda_tests", "compile", "epoch_log", "train_speed", "demo", "overhead"]
    tests = steps["cuda_tests"]["result"]
    # skipped here: each CUDA-only test, parametrised ones once per case
    assert tests["counts"]["passed"] == tests["counts"]["failed"] == 0
    assert tests["counts"]["skipped"] >= len(steps["cuda_tests"]["tests"]) > 0
    compiled = steps["compile"]["result"]
    for name in ("grey", "rgb", "pair_loss_grey"):  # one graph each: no recompile at the first step
        assert compiled[name]["graphs_warm_up"] == compiled[name]["graphs_total"] == 1, name
    assert set(steps["epoch_log"]["result"]["seconds_per_epoch"]) == {"lag0", "lag1"}
    assert steps["train_speed"]["result"]["images_per_second"]
    assert steps["demo"]["rc"] == 0 and "--dry-run" in steps["demo"]["command"]
    assert set(steps["overhead"]["result"]["per_unit"]) == {"epoch_overhead_s", "case_overhead_s"}
    assert (tmp_path / "logs" / "demo.log").exists()
