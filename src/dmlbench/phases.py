"""Where a job's time goes: wall and CPU seconds per named phase of one process.

A train or score job records its phases in its job record (results/jobs/{rule}/...json, see
dmlbench.train.job) and, for train, in each run's run.json; `dmlbench aggregate` puts them in
tables/runtime.parquet. Standard library only: the clock starts before the heavy imports.

Phases (:data:`PHASES`), in the order a job meets them:

- ``startup``: from the process's start (the interpreter's own start-up included, where the
  operating system says when the process began) to the end of the command's imports and the
  device's initialisation;
- ``data``: reading the inputs (dataset npz, embeddings) and moving them to the device;
- ``build``: model, head, optimiser and fastai Learner set-up (per run and per case);
- ``compile``: torch.compile and its warm-up step;
- ``training``: the fits (fastai's fit_one_cycle: training steps, the per-epoch validation and
  the per-epoch bookkeeping);
- ``embedding``: reference and test embeddings of each trained case;
- ``restore``: runs taken from the run cache instead of trained (dmlbench.train.run_cache);
- ``scoring``: anomaly scores of every test image;
- ``writing``: the job's output files; a train job writes its runs' files on a background
  thread while the next run trains, and books here only the time its main thread waited for
  that writer (the writer's own seconds are in the job record's runs, dmlbench.train.job);
- ``other``: the rest of the process's time (provenance, argument parsing, unmeasured gaps).
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
from collections.abc import Iterator

PHASES = ("startup", "data", "build", "compile", "training", "embedding", "restore", "scoring", "writing", "other")


def process_age_seconds() -> float | None:
    """Seconds since this process started, from /proc (Linux); None where that is not known."""
    try:
        with open("/proc/self/stat") as fh:
            # the command name (field 2) may hold spaces: fields after its closing parenthesis
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, clock ticks after boot
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - started, 0.0)


class PhaseClock:
    """Wall and CPU seconds per phase of this process.

    ``wall`` and ``cpu`` map a phase name to seconds (CPU: the process's user + system time, all
    threads, from :func:`time.process_time`). Created at a process's start, it takes the time
    already spent (the interpreter's start-up) as the origin: ``start_wall`` is
    ``time.perf_counter()`` minus the process's age, so :meth:`total` covers the whole process.
    Phases may be entered several times (per run, per case); the seconds add up. Time is
    exclusive: a phase entered inside another is booked to the inner one only (a case's
    ``training`` block that sets up its Learner inside a ``build`` block books that set-up as
    build), so the phases never count a second twice and add up to at most :meth:`total`.
    """

    def __init__(self, *, from_process_start: bool = True):
        now = time.perf_counter()
        age = process_age_seconds() if from_process_start else None
        self.start_wall = now - (age or 0.0)
        self.start_cpu = 0.0 if from_process_start else time.process_time()
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._mark_wall, self._mark_cpu = self.start_wall, self.start_cpu
        self._inner: list[list[float]] = []  # per open phase: [wall, cpu] of the phases inside it

    def add(self, name: str, wall: float, cpu: float) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name`` (also when it raises), less the phases inside it."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")
        w0, c0 = time.perf_counter(), time.process_time()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            inner_wall, inner_cpu = self._inner.pop()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            self.add(name, wall - inner_wall, cpu - inner_cpu)
            if self._inner:  # the enclosing phase does not count this block again
                self._inner[-1][0] += wall
                self._inner[-1][1] += cpu

    def timed(self, name: str, fn):
        """``fn`` with each call timed as phase ``name``."""

        def call(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)

        return call

    def since_mark(self, name: str) -> None:
        """Book the time since the previous mark (or the clock's origin) as phase ``name``: for
        stretches that are not one block, such as the start-up before the clock existed."""
        w, c = time.perf_counter(), time.process_time()
        self.add(name, w - self._mark_wall, c - self._mark_cpu)
        self._mark_wall, self._mark_cpu = w, c

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        """The seconds booked so far (wall, CPU), for :meth:`since`."""
        return dict(self.wall), dict(self.cpu)

    def since(self, snapshot: tuple[dict[str, float], dict[str, float]]) -> dict[str, dict[str, float]]:
        """Phases booked after ``snapshot`` as {name: {"wall_s", "cpu_s"}}, in :data:`PHASES` order."""
        wall0, cpu0 = snapshot
        return {
            name: {
                "wall_s": round(self.wall[name] - wall0.get(name, 0.0), 4),
                "cpu_s": round(self.cpu[name] - cpu0.get(name, 0.0), 4),
            }
            for name in PHASES
            if self.wall.get(name, 0.0) != wall0.get(name, 0.0)
        }

    def total(self) -> tuple[float, float]:
        """(wall, CPU) seconds since the clock's origin."""
        return time.perf_counter() - self.start_wall, time.process_time() - self.start_cpu

    def record(self) -> dict:
        """The phases as {"wall_s", "cpu_s", "phases": {name: {"wall_s", "cpu_s"}}}, in
        :data:`PHASES` order, with ``other`` = total minus the measured phases (never below 0)."""
        wall, cpu = self.total()
        phases = {
            name: {"wall_s": round(self.wall[name], 4), "cpu_s": round(self.cpu[name], 4)}
            for name in PHASES
            if name in self.wall and name != "other"
        }
        other_wall = wall - sum(self.wall[n] for n in phases) + self.wall.get("other", 0.0)
        other_cpu = cpu - sum(self.cpu[n] for n in phases) + self.cpu.get("other", 0.0)
        phases["other"] = {"wall_s": round(max(other_wall, 0.0), 4), "cpu_s": round(max(other_cpu, 0.0), 4)}
        return {"wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "phases": phases}


class NoClock(PhaseClock):
    """A clock that books nothing: the default of functions that take an optional clock."""

    def __init__(self):
        super().__init__(from_process_start=False)

    def add(self, name: str, wall: float, cpu: float) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; phases: {', '.join(PHASES)}")


# --------------------------------------------------------------------------- the job record

#: Packages whose presence in a job's process the job record reports (the costly imports, and
#: those a train or score job should never need: plotting, the report).
WATCHED_IMPORTS = (
    "torch",
    "torchvision",
    "fastai",
    "pandas",
    "pyarrow",
    "scipy",
    "sklearn",
    "matplotlib",
    "PIL",
    "torch._dynamo",
    "torch._inductor",
    "altair",
    "vl_convert",
    "dmlbench.report",
)


def imports_record() -> dict:
    """Modules loaded in this process so far, and which of :data:`WATCHED_IMPORTS`."""
    return {"modules": len(sys.modules), "watched": [m for m in WATCHED_IMPORTS if m in sys.modules]}


def max_rss_mb() -> float:
    """Peak resident memory of this process in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def job_record(rule: str, clock: PhaseClock, runs: list[dict], **extra) -> dict:
    return {
        "rule": rule,
        "runs": runs,
        **clock.record(),
        "max_rss_mb": max_rss_mb(),
        "imports": imports_record(),
        **extra,
    }
