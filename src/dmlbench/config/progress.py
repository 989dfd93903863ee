"""`dmlbench progress`: what a run of the workflow has done, is doing and has left, with an
estimate, read from its files alone (no Snakemake, no torch).

The plan is the config's (dmlbench.config.specs.job_groups, the train and score jobs the
workflow makes); a job is done when its record exists (results/jobs/{rule}/{group}.json, written
last), running when its log exists without a record (logs/{rule}/{group}.log), left otherwise.
The estimate: per rule, the mean wall time of its jobs done times the jobs left, plus, per job
running, that mean less the time since its log was created (at least 0). A running train job's
log ends with its latest epoch line (``~2m05s left in this run``), quoted as it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from dmlbench import layout
from dmlbench.config.specs import job_groups
from dmlbench.errors import DmlbenchError

#: The log folder of the train and score jobs, as the rules name it (logs/{rule}/{group}.log).
LOGS = "logs"


def duration(seconds: float) -> str:
    """Seconds as 45s, 2m05s, 1h03m: the train log's progress line, `dmlbench progress` and the
    console's logger plugin all print times this way."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def job_states(config: dict, results: str | Path = layout.RESULTS, logs: str | Path = LOGS) -> list[dict]:
    """One dict per planned train and score job: rule, group, state (done, running, left), and
    wall_s (done: from its record) or started (running: the log's creation time, epoch seconds)."""
    out = []
    for rule, group in job_groups(config):
        record = Path(layout.job_record(rule, group, results))
        log = Path(logs) / rule / f"{group}.log"
        state = {"rule": rule, "group": group, "log": str(log)}
        if record.is_file():
            try:
                state.update(state="done", wall_s=float(json.loads(record.read_text())["wall_s"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DmlbenchError(
                    f"{record} is not a readable job record ({exc}); delete it and rerun its job"
                ) from None
        elif log.is_file():
            state.update(state="running", started=log.stat().st_mtime if log.stat().st_size == 0 else _created(log))
        else:
            state["state"] = "left"
        out.append(state)
    return out


def _created(path: Path) -> float:
    stat = path.stat()
    return getattr(stat, "st_birthtime", None) or min(stat.st_ctime, stat.st_mtime)


def last_epoch_line(log: str | Path) -> str | None:
    """The latest per-epoch line of a train job's log (dmlbench.train.progress), or None."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    line = next((line for line in reversed(lines) if " left in this run" in line), None)
    # the job's log format: "<date> <time> <logger> <message>" (dmlbench.cli)
    return line.split(" ", 3)[-1] if line and line[:1].isdigit() else line


def summary(
    config: dict, results: str | Path = layout.RESULTS, logs: str | Path = LOGS, now: float | None = None
) -> str:
    """The progress report `dmlbench progress` prints: per rule done / running / left, the running
    jobs with their latest epoch line, and the estimate of the time left."""
    now = time.time() if now is None else now
    states = job_states(config, results, logs)
    lines, left_s, unknown = [], 0.0, []
    for rule in ("train", "score"):
        jobs = [s for s in states if s["rule"] == rule]
        done = [s for s in jobs if s["state"] == "done"]
        running = [s for s in jobs if s["state"] == "running"]
        left = [s for s in jobs if s["state"] == "left"]
        lines.append(f"{rule}: {len(done)} of {len(jobs)} jobs done, {len(running)} running, {len(left)} left")
        mean = sum(s["wall_s"] for s in done) / len(done) if done else None
        for s in running:
            epoch = last_epoch_line(s["log"]) if rule == "train" else None
            lines.append(f"  running {s['group']} (for {duration(now - s['started'])}; log {s['log']})")
            if epoch:
                lines.append(f"    {epoch}")
        if left or running:
            if mean is None:
                unknown.append(rule)
            else:
                left_s += mean * len(left) + sum(max(0.0, mean - (now - s["started"])) for s in running)
        if mean is not None:
            lines.append(f"  {duration(mean)} per {rule} job done (mean of {len(done)})")
    if unknown:
        lines.append(f"estimate: none yet for {', '.join(unknown)} (no job of it has finished)")
    elif any(s["state"] != "done" for s in states):
        lines.append(f"estimate: ~{duration(left_s)} left (one job at a time; divide by the jobs that run at once)")
    else:
        lines.append("all train and score jobs are done")
    lines.append(
        f"logs: {logs}/train/<dataset>/a<n>/n<N>/s<seed>.log (an epoch per line), {logs}/score/..., {logs}/<rule>.log"
    )
    return "\n".join(lines) + "\n"
