"""bench.full_study --estimate's arithmetic on a layout worked out by hand: what each process,
case seed, run, case and epoch adds to the GPU time, and the per-run layout it is compared with."""

from __future__ import annotations

import pytest

import bench.full_study


@pytest.fixture(scope="module")
def full_study():
    return bench.full_study


def _spec(method, n_per_class, *, seed=0, cases=2, epochs=3, compile="false", n_anomaly=1):
    return {
        "dataset": "toy",
        "source": "toy",
        "method": method,
        "n_anomaly": n_anomaly,
        "n_per_class": n_per_class,
        "seed": seed,
        "cases": cases,
        "model": {"backbone": "resnet18"},
        "training": {"epochs": epochs, "batch_size": 10, "lr": 0.01, "val_fraction": 0.0, "compile": compile},
    }


# 3 classes of 40 training images, 30 test images, one input kind; units chosen so that every
# term is a multiple of 0.1 s (the estimate rounds its seconds to 0.1)
PROFILES = {"toy": ([40, 40, 40], 30, "grey28")}
SPEED = {
    "images_per_second": {"grey28": 10.0},
    "eval_cost": 0.5,
    "startup_s": 10.0,
    "data_s": 1.0,
    "compile_cold_s": 40.0,
    "compile_warm_s": 4.0,
    "case_build_s": 2.0,
    "model_copy_s": 0.5,
    "run_overhead_s": 1.0,
    "write_s": 5.0,
    "case_overhead_s": 0.1,
    "epoch_overhead_s": 0.05,
}


def test_one_job_of_two_methods_on_two_sizes(full_study):
    # one process: 2 methods x 2 sizes = 4 runs, each 2 cases of 3 epochs, seed 0
    job = [_spec(m, n) for n in ("all", 20) for m in ("arcface", "cosface")]
    out = full_study.layout_seconds([job], PROFILES, SPEED, per_run=False)
    sec = out["seconds"]
    # 2 normal classes: n=all trains on 80 images (8 steps of 10), n=20 on 40 (4 steps); x 3 epochs x 2 cases
    assert sec["train"] == pytest.approx((2 * 80 * 3 * 2 + 2 * 40 * 3 * 2) / 10)
    # evaluated per case: a validation pass of 1 image per epoch (none carved out), reference and test
    assert sec["eval"] == pytest.approx(0.5 * (2 * (3 + 80 + 30) * 2 + 2 * (3 + 40 + 30) * 2) / 10)
    assert sec["startup"] == 10.0 and sec["data"] == 1.0 and sec["compile"] == 0.0
    # two case seeds built once for the whole process, every run's model copied once
    assert sec["build"] == pytest.approx(2 * 2.0 + 4 * 0.5)
    assert sec["run"] == pytest.approx(4 * 1.0)
    assert sec["write"] == pytest.approx(5.0)  # the last run's; the others overlap training
    assert sec["case"] == pytest.approx(8 * 0.1)
    assert sec["epoch"] == pytest.approx(8 * 3 * 0.05)
    overhead = sum(sec[k] for k in full_study.OVERHEADS)
    assert out["overhead_share"] == pytest.approx(overhead / (overhead + sec["train"] + sec["eval"]), abs=1e-4)
    assert out["processes"] == 1


def test_one_process_per_run_builds_and_writes_per_run(full_study):
    job = [_spec(m, "all") for m in ("arcface", "cosface", "sphereface")]
    out = full_study.layout_seconds([job], PROFILES, SPEED, per_run=True)
    sec = out["seconds"]
    assert out["processes"] == 3
    assert sec["startup"] == 30.0 and sec["data"] == 3.0 and sec["write"] == pytest.approx(15.0)
    assert sec["build"] == pytest.approx(3 * (2 * 2.0 + 0.5))  # every run builds its own cases


def test_other_seeds_and_models_are_built_again_and_compile_is_cold_once(full_study):
    jobs = [
        [_spec("arcface", "all", seed=0, compile="true"), _spec("arcface", "all", seed=1, compile="true")],
        [_spec("cosface", "all", seed=0, compile="true")],
    ]
    out = full_study.layout_seconds(jobs, PROFILES, SPEED, per_run=False)
    sec = out["seconds"]
    assert sec["build"] == pytest.approx((4 + 2) * 2.0 + 3 * 0.5)  # seeds 0 and 1: 4 case seeds, then 2
    assert sec["compile"] == pytest.approx(40.0 + 4.0)  # the second process finds the caches warm
    assert sec["write"] == pytest.approx(2 * 5.0)
