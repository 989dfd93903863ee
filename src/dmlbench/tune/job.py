"""A tune job: one method of one (dataset, n_anomaly, n_per_class, seed), every case's trials in
one process (the data read and moved to the device once, as a train job does).

Per case one Optuna study, named by the run's path, the case and a digest of the tune spec (a
changed search space or budget starts a new study). Trials go to an Optuna storage: by default a
journal file beside the job's files (results/tuning/.../journal.log, not a Snakemake output, so it
survives a failed job), or ``tuning.storage``, an RDB URL that tune jobs on several machines share.

Resuming: a study keeps every finished trial; a job started again runs only the trials its case
still lacks (``tuning.trials`` finished - complete or pruned - trials per case). A trial left
running by a killed process is marked failed and run again. Each trial's sampler is seeded by
(``tuning.sampler.seed``, case, the number of finished trials), and the samplers keep no state
outside the storage, so a resumed job proposes the same parameters as one never interrupted.

Writes, each atomically, once every case is done:
  best.json   the spec, the measure, and per case its best parameters, value, trial, folds
  trials.csv  every trial: case, number, state, value, per-fold values, parameters, seconds
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from dmlbench.config.tuning import MEASURES, spec_digest
from dmlbench.data.sources import load_npz
from dmlbench.data.splits import Case, run_cases
from dmlbench.errors import DmlbenchError, TrainingError
from dmlbench.io import write_csv, write_json
from dmlbench.layout import TUNING_JOURNAL, run_path
from dmlbench.phases import NoClock, PhaseClock
from dmlbench.train.batches import JobData
from dmlbench.train.device import device_name, resolve_device, setup_device
from dmlbench.tune.objective import CaseObjective

log = logging.getLogger("dmlbench.tune")

#: Trials that spent budget: a complete one, or one pruned (past the time limit, or diverged).
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_for(storage: str | None, out_dir: str | Path):
    """The Optuna storage: a journal file in ``out_dir`` (None), or an RDB URL as given."""
    if storage is None:
        path = Path(out_dir) / TUNING_JOURNAL
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in storage:
        raise DmlbenchError(
            f"tuning.storage {storage!r} is not an RDB URL (sqlite:///path.db, postgresql://user@host/db); "
            f"leave it null for a journal file under results/tuning/"
        )
    return optuna.storages.RDBStorage(storage)


def sampler_for(spec: dict, case: int, finished: int) -> optuna.samplers.BaseSampler:
    """The sampler of a case's next trial, seeded by (sampler seed, case, finished trials)."""
    s = spec["tuning"]["sampler"]
    seed = int(np.random.SeedSequence([int(s["seed"]), int(spec["seed"]), case, finished]).generate_state(1)[0])
    if s["name"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(s["startup_trials"]))


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """A trial's parameters, drawn from the search space (name -> range or choices)."""
    params = {}
    for name, rng in space.items():
        if "choices" in rng:
            params[name] = trial.suggest_categorical(name, rng["choices"])
        elif rng.get("integer"):
            params[name] = trial.suggest_int(name, int(rng["low"]), int(rng["high"]), log=bool(rng.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(rng["low"]), float(rng["high"]), log=bool(rng.get("log")))
    return params


def study_name(spec: dict, case: int) -> str:
    keys = {k: spec[k] for k in ("dataset", "n_anomaly", "method", "n_per_class", "seed")}
    return f"{run_path(keys)}/case{case}/{spec_digest(spec)}"


def fail_stale(study: optuna.Study) -> int:
    """Mark the trials a killed process left running as failed (they are run again); their count."""
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(stale)


def tune_case(objective: CaseObjective, spec: dict, storage, *, stop_after: int | None = None) -> optuna.Study:
    """Run the case's trials still missing from its study (``tuning.trials`` finished in all).
    ``stop_after``: run at most that many now (tests)."""
    case = objective.case.case
    study = optuna.create_study(study_name=study_name(spec, case), storage=storage, direction="maximize",
                                load_if_exists=True)  # fmt: skip
    stale = fail_stale(study)
    budget = int(spec["tuning"]["trials"])
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    if done or stale:
        log.info(
            "case %d: resuming with %d of %d trials finished (%d left running, run again)", case, done, budget, stale
        )
    ran = 0
    while done < budget and (stop_after is None or ran < stop_after):
        study.sampler = sampler_for(spec, case, done)
        study.optimize(lambda trial: _trial(objective, spec, trial), n_trials=1, catch=())
        done, ran = len(study.get_trials(deepcopy=False, states=FINISHED)), ran + 1
    return study


def _trial(objective: CaseObjective, spec: dict, trial: optuna.Trial) -> float:
    params = suggest(trial, spec["tuning"]["space"])
    start = time.perf_counter()
    try:
        value, folds = objective(params)
    except TrainingError as exc:
        trial.set_user_attr("reason", str(exc))
        raise optuna.TrialPruned(str(exc)) from None
    except optuna.TrialPruned as exc:
        trial.set_user_attr("reason", str(exc))
        raise
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
    trial.set_user_attr("fold_values", folds)
    trial.set_user_attr("folds", [int(c) for c in objective.folds])
    log.info("case %d trial %d: %.4f %s", objective.case.case, trial.number, value, params)
    return value


def case_result(study: optuna.Study, objective: CaseObjective, classes: list[str]) -> dict:
    """A case's entry of best.json: its best complete trial (none complete: the defaults)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: (t.value, -t.number)) if complete else None
    return {
        "case": objective.case.case,
        "measure": objective.measure,
        "folds": [classes[c] for c in objective.folds],
        "n_normal": len(objective.case.normal_classes),
        "params": dict(best.params) if best else {},
        "value": best.value if best else None,
        "trial": best.number if best else None,
        "complete": len(complete),
        "pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
    }


def trial_rows(study: optuna.Study, spec: dict, case: int) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        rows.append(
            {
                **{k: spec[k] for k in ("dataset", "n_anomaly", "method", "n_per_class", "seed")},
                "case": case,
                "trial": t.number,
                "state": t.state.name.lower(),
                "value": t.value,
                "fold_values": json.dumps(t.user_attrs.get("fold_values")),
                "params": json.dumps(t.params, sort_keys=True),
                "seconds": t.user_attrs.get("seconds"),
                "reason": t.user_attrs.get("reason", ""),
            }
        )
    return rows


def tune_job(
    data_path: str | Path,
    spec: dict,
    out_dir: str | Path,
    *,
    storage: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    clock: PhaseClock | None = None,
    ds=None,
    stop_after: int | None = None,
) -> dict:
    """Tune every case of ``spec`` (dmlbench.config.tuning.tune_spec); write best.json and
    trials.csv to ``out_dir``; return best.json's content. ``ds``: the dataset already read
    (tests); ``stop_after``: stop each case after that many new trials, writing nothing (tests)."""
    clock = clock or NoClock()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    setup_device(dev, spec["training"].get("deterministic", False))
    with clock.phase("data"):
        ds = ds if ds is not None else load_npz(data_path)
        data = JobData(ds, dev)
    store = storage_for(storage, out_dir)
    cases: list[Case] = run_cases(ds, spec)
    results, rows = [], []
    for case in cases:
        objective = CaseObjective(ds, data, case, spec, dev, spec["tuning"]["timeout_per_trial"])
        with clock.phase("training"):
            study = tune_case(objective, spec, store, stop_after=stop_after)
        results.append(case_result(study, objective, list(ds.classes)))
        rows.extend(trial_rows(study, spec, case.case))
    best = {
        **{k: spec[k] for k in ("dataset", "n_anomaly", "method", "n_per_class", "seed")},
        "space": spec["tuning"]["space"],
        "trials": spec["tuning"]["trials"],
        "folds": spec["tuning"]["folds"],
        "measures": {r["measure"]: MEASURES[r["measure"]] for r in results},
        "storage": "journal" if storage is None else storage.split("://", 1)[0],
        "device": device_name(dev),
        "cases": results,
    }
    if stop_after is None:
        out = Path(out_dir)
        write_csv(out / "trials.csv", pd.DataFrame(rows))
        write_json(out / "best.json", best)
    return best
