"""Where a job's time goes (dmlbench.phases): phases booked exclusively, added up over entries,
the rest booked as 'other', the process's age from the operating system; compile cache outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from dmlbench import phases
from dmlbench.phases import PhaseClock
from dmlbench.train import compile_cache


class FakeTime:
    """perf_counter and process_time that advance only when told: wall and CPU seconds by hand."""

    def __init__(self):
        self.wall, self.cpu = 100.0, 10.0

    def tick(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


@pytest.fixture
def fake(monkeypatch):
    t = FakeTime()
    monkeypatch.setattr(phases.time, "perf_counter", lambda: t.wall)
    monkeypatch.setattr(phases.time, "process_time", lambda: t.cpu)
    monkeypatch.setattr(phases, "process_age_seconds", lambda: 5.0)  # the process began 5 s ago
    return t


def test_phases_are_exclusive_and_add_up_over_entries(fake):
    clock = PhaseClock()  # origin: 5 s ago, CPU 0
    fake.tick(1, 1)
    clock.since_mark("startup")  # 5 + 1 s wall since the process began; CPU 10 + 1
    with clock.phase("training"):
        fake.tick(2, 2)
        with clock.phase("build"):  # inside training: booked to build only
            fake.tick(0.5, 0.25)
        fake.tick(3, 3)
    with clock.phase("training"):
        fake.tick(4, 1)
    fake.tick(0.5, 0.5)  # not in any phase: 'other'
    assert clock.wall == {"startup": 6.0, "training": 9.0, "build": 0.5}
    assert clock.cpu == {"startup": 11.0, "training": 6.0, "build": 0.25}
    record = clock.record()
    assert record["wall_s"] == 16.0 and record["cpu_s"] == 17.75
    assert list(record["phases"]) == ["startup", "build", "training", "other"]  # PHASES order
    assert record["phases"]["other"] == {"wall_s": 0.5, "cpu_s": 0.5}
    assert sum(p["wall_s"] for p in record["phases"].values()) == record["wall_s"]


def test_since_a_snapshot_and_timed_calls(fake):
    clock = PhaseClock(from_process_start=False)
    with clock.phase("data"):
        fake.tick(1, 1)
    booked = clock.snapshot()
    work = clock.timed("embedding", lambda x: fake.tick(x, x / 2) or x)
    assert work(2.0) == 2.0
    with clock.phase("data"):
        fake.tick(3, 0)
    assert clock.since(booked) == {"data": {"wall_s": 3.0, "cpu_s": 0.0}, "embedding": {"wall_s": 2.0, "cpu_s": 1.0}}


def test_a_phase_is_booked_when_its_block_raises_and_unknown_phases_are_refused(fake):
    clock = PhaseClock(from_process_start=False)
    with pytest.raises(RuntimeError), clock.phase("writing"):
        fake.tick(1, 1)
        raise RuntimeError("disk full")
    assert clock.wall == {"writing": 1.0}
    with pytest.raises(ValueError, match="unknown phase 'imports'"), clock.phase("imports"):
        pass


def test_process_age_counts_from_the_process_start():
    """A child that sleeps 0.4 s before asking: its age is at least that, and at most the time
    since the parent started it."""
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("no /proc: the age is not known there")
    code = "import time; time.sleep(0.4); from dmlbench.phases import process_age_seconds as a; print(a())"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    age = float(out)
    assert 0.4 <= age <= elapsed + 0.02  # /proc counts in clock ticks (10 ms)


def test_compile_cache_outcomes():
    before = {
        "inductor.fxgraph_cache_hit": 1,
        "inductor.fxgraph_cache_miss": 2,
        "aot_autograd.autograd_cache_hit": 0,
        "aot_autograd.autograd_cache_miss": 1,
        "frames.ok": 1,
    }

    def after(**changes):
        return {**before, **{k.replace("__", "."): before[k.replace("__", ".")] + v for k, v in changes.items()}}

    assert compile_cache.outcome(
        before, after(inductor__fxgraph_cache_miss=2, aot_autograd__autograd_cache_miss=1, frames__ok=1)
    ) == {"cache": "cold", "hits": 0, "misses": 3}
    assert compile_cache.outcome(before, after(inductor__fxgraph_cache_hit=2, frames__ok=1))["cache"] == "warm"
    assert (
        compile_cache.outcome(
            before, after(inductor__fxgraph_cache_hit=1, aot_autograd__autograd_cache_miss=1, frames__ok=1)
        )["cache"]
        == "partial"
    )
    assert compile_cache.outcome(before, after())["cache"] == "reused"  # nothing compiled: an earlier run's code
    assert compile_cache.outcome(before, after(frames__ok=1))["cache"] == "uncached"  # e.g. backend="eager"


def test_compile_caches_go_below_the_cache_folder_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("TRITON_CACHE_DIR", "/elsewhere/triton")
    monkeypatch.setenv("DMLBENCH_CACHE_DIR", str(tmp_path / "shared"))
    assert compile_cache.cache_root("results") == tmp_path / "shared"
    used = compile_cache.configure(compile_cache.cache_root("results"))
    assert used == {"inductor": str(tmp_path / "shared" / "inductor"), "triton": "/elsewhere/triton"}
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "shared" / "inductor")
    monkeypatch.delenv("DMLBENCH_CACHE_DIR")
    assert compile_cache.cache_root(tmp_path / "results") == tmp_path / "results" / ".cache"
