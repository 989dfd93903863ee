"""`dmlbench <stage>`: what the Snakemake rules call, usable alone.

Stages: prepare, train, tune, score, aggregate, closed-set, snapshot, figures; plus `validate` (check a config and print
it with defaults), `list` (the heads, losses, miners, scorers and dataset sources a config may name, with their
parameters and defaults), `render` (the Quarto report, where quarto is installed) and `--version`.
Errors the user can act on are printed as one line (no traceback) with exit status 2.

The one module that imports the stages lazily: each subcommand imports its stage's package when it
runs (dmlbench.data, .train, .tune, .score, .aggregate, .report), so `dmlbench validate` pays for no torch
and a train job's start-up phase holds exactly the imports it needs. At the top: the config
(torch-free), the layout and the clock.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from dmlbench import __version__, layout
from dmlbench.config import load_config, score_spec, spec_from_arg, train_spec, validate
from dmlbench.config.tuning import tune_spec, with_case_params
from dmlbench.errors import DmlbenchError
from dmlbench.phases import PhaseClock


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="config YAML file (validated, defaults filled)")
    p.add_argument("--spec", help="inline JSON job spec, as the Snakemake rules pass it (instead of --config + keys)")


def _run_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset")
    p.add_argument("--n-anomaly", type=int)
    p.add_argument("--method", nargs="+", help="one or more methods of the config, trained in one process")
    p.add_argument("--n-per-class", default="all")
    p.add_argument("--seed", type=int, default=0)


def cmd_validate(args) -> None:
    config = load_config(args.config, check_data=True)  # folder datasets: their listing too
    print(yaml.safe_dump(config, sort_keys=False), end="")


def cmd_list(args) -> None:
    from dmlbench.config import catalog  # torch-free: the schema and the stored declarations

    print(catalog.text(args.kind), end="")


def cmd_prepare(args) -> None:
    from dmlbench.data.sources import load_source, save_npz

    if args.spec:
        entry = spec_from_arg(args.spec)
    else:
        config = load_config(_need(args, "config"))
        name = _need(args, "dataset")
        if name not in config["datasets"]:
            raise DmlbenchError(
                f"dataset '{name}' is not defined in {args.config} (defined: {', '.join(config['datasets'])})"
            )
        entry = config["datasets"][name]
    out = Path(args.out or layout.data_file(_need(args, "dataset"), args.results))
    ds = load_source(entry)
    save_npz(ds, out)
    print(
        f"{out}: {len(ds.y_train)} train + {len(ds.y_test)} test images, {ds.x_train.shape[1:]} each, "
        f"{len(ds.classes)} classes"
    )
    for note in ds.notes:
        print(f"{out}: {note}")


def _need(args, name):
    value = getattr(args, name.replace("-", "_"))
    if value is None:
        raise DmlbenchError(f"--{name} is required (or give --spec)")
    return value


def _train_specs(args) -> list[dict]:
    """The specs of the runs to train: --spec (one JSON object, or a list of them) or --config
    with the run's keys (one run per --method)."""
    if args.spec:
        specs = spec_from_arg(args.spec)
        specs = specs if isinstance(specs, list) else [specs]
        if not specs or len({s.get("dataset") for s in specs}) != 1:
            raise DmlbenchError("--spec must hold one run, or a list of runs of one dataset")
        return specs
    config = load_config(_need(args, "config"))
    return [
        train_spec(config, _need(args, "dataset"), _need(args, "n_anomaly"), method, args.n_per_class, args.seed)
        for method in _need(args, "method")
    ]


def _with_tuned(specs: list[dict], tuned: list[str] | None) -> list[dict]:
    """The specs of tuned runs (``<label>_tuned``) with each case's best parameters, from the tune
    jobs' best.json files (--tuned), matched by method."""
    best = {}
    for path in tuned or []:
        try:
            entry = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DmlbenchError(f"--tuned {path}: not a readable best.json ({exc}); rerun its tune job") from None
        best[entry.get("method")] = entry
    out = []
    for spec in specs:
        if "tuned" in spec:
            if spec["tuned"] not in best:
                raise DmlbenchError(
                    f"run '{spec['method']}' is a tuned run, but no --tuned best.json of method '{spec['tuned']}' "
                    f"was given (results/tuning/.../{spec['tuned']}/.../best.json, written by `dmlbench tune`)"
                )
            spec = with_case_params(spec, best[spec["tuned"]])
        out.append(spec)
    return out


def cmd_train(args) -> None:
    clock = PhaseClock()  # its origin is the process's start: the interpreter's start-up counts
    specs = _with_tuned(_train_specs(args), args.tuned)
    from dmlbench.train import compile_cache, run_cache  # standard library only

    cache = Path(args.cache_dir) if args.cache_dir else compile_cache.cache_root(args.results)
    compile_cache.configure(cache)  # before anything compiles
    # Start-up, paid once for all the job's runs: the train stage (torch, torchvision, fastai),
    # torch._dynamo (every torch optimiser imports it, with Inductor, at its first parameter group),
    # the device.
    import torch

    from dmlbench.train import determinism, gpus

    determinism.prepare_environment(specs)  # training.deterministic: before Inductor and cuBLAS start
    import torch._dynamo  # noqa: F401

    from dmlbench.train.device import resolve_device
    from dmlbench.train.job import train_runs

    # One GPU per job: with several visible, the job takes one no other job holds (dmlbench.train.gpus).
    visible = torch.cuda.device_count() if args.device in ("auto", "cuda") and torch.cuda.is_available() else 0
    device = gpus.job_device(args.device, visible, args.gpu_locks or gpus.default_lock_dir(args.results))
    dev = resolve_device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            torch.cuda.set_device(dev)  # the context, and any stream or event, on the job's GPU, not GPU 0
        torch.zeros(1, device=dev)  # the CUDA context
    clock.since_mark("startup")

    first = specs[0]
    data = Path(args.data or layout.data_file(first["dataset"], args.results))
    outs = args.out or [layout.run_dir(s, args.results) for s in specs]
    use_cache = run_cache.enabled() and not args.no_run_cache
    train_runs(
        data,
        specs,
        [Path(o) for o in outs],
        clock=clock,
        device=device,
        threads=args.threads,
        cache_root=cache if use_cache else None,
        job_out=args.job,
    )
    for out in outs:
        print(f"{out}: embeddings.npz, train_log.csv, run.json")


def cmd_tune(args) -> None:
    clock = PhaseClock()
    if args.spec:
        spec = spec_from_arg(args.spec)
        storage = args.storage
    else:
        config = load_config(_need(args, "config"))
        methods = _need(args, "method")
        if len(methods) != 1:
            raise DmlbenchError("dmlbench tune takes one --method: a tune job tunes one method")
        spec = tune_spec(
            config, _need(args, "dataset"), _need(args, "n_anomaly"), methods[0], args.n_per_class, args.seed
        )
        storage = args.storage or config["tuning"]["storage"]
    # Start-up: the tune stage (torch, fastai, Optuna, pytorch-metric-learning).
    from dmlbench.train.device import resolve_device
    from dmlbench.tune.job import tune_job

    resolve_device(args.device)
    clock.since_mark("startup")
    data = Path(args.data or layout.data_file(spec["dataset"], args.results))
    out = Path(args.out or layout.tuning_dir(spec, args.results))
    best = tune_job(data, spec, out, storage=storage, device=args.device, threads=args.threads, clock=clock)
    for case in best["cases"]:
        print(f"{out}: case {case['case']}: {case['measure']} {case['value']} with {case['params']}")


def cmd_tuning_tables(args) -> None:
    from dmlbench.aggregate.tuning import write_tuning_tables

    write_tuning_tables(args.best, args.trials, args.out or layout.tables_dir(args.results))


def cmd_score(args) -> None:
    clock = PhaseClock()
    # Start-up: the score stage (torch, pandas, SciPy, scikit-learn).
    import torch

    from dmlbench.score.job import score_runs

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = spec_from_arg(args.spec) if args.spec else score_spec(load_config(_need(args, "config")))
    clock.since_mark("startup")
    score_runs(args.run, spec, args.out, clock=clock, job_out=args.job)


def cmd_aggregate(args) -> None:
    from dmlbench.aggregate.tables import write_tables

    # Hidden files are temporary outputs of score jobs that were killed before their rename.
    scores = args.scores or sorted(
        str(p) for p in Path(layout.scores_dir(args.results)).rglob("*.parquet") if not p.name.startswith(".")
    )
    out = Path(args.out or layout.tables_dir(args.results))
    benchmarks = args.benchmarks
    if benchmarks is None:
        benchmarks = (
            sorted(str(p) for p in Path(args.benchmark_root).rglob("*.tsv") if not p.name.startswith("."))
            if Path(args.benchmark_root).exists()
            else []
        )
    runs = args.runs
    if runs is None:  # the run.json of each score file's run, where it exists
        score_root, run_root = Path(layout.scores_dir(args.results)), Path(layout.runs_dir(args.results))
        runs = [
            str(run_root / p.relative_to(score_root).with_suffix("") / "run.json")
            for p in map(Path, scores)
            if p.is_relative_to(score_root)
        ]
        runs = [r for r in runs if Path(r).is_file()]
    jobs = args.jobs
    if jobs is None:  # the job records under --job-root
        root = Path(args.job_root or layout.jobs_dir(args.results))
        jobs = sorted(str(p) for p in root.rglob("*.json") if not p.name.startswith(".")) if root.exists() else []
    tables = write_tables(
        scores,
        benchmarks,
        args.benchmark_root,
        out,
        run_paths=runs,
        job_paths=jobs,
        job_root=args.job_root or layout.jobs_dir(args.results),
    )
    print(f"{out}: " + ", ".join(f"{name}.parquet ({len(df)} rows)" for name, df in tables.items()))


def cmd_closed_set(args) -> None:
    from dmlbench.aggregate.closed_set import closed_set_tables
    from dmlbench.io import write_parquet

    out = Path(args.out or layout.tables_dir(args.results))
    tsne, closed = closed_set_tables(args.runs, points=args.points, perplexity=args.perplexity)
    write_parquet(out / "tsne.parquet", tsne)
    write_parquet(out / "closed_set.parquet", closed)
    print(f"{out}: tsne.parquet ({len(tsne)} rows), closed_set.parquet ({len(closed)} rows)")


def cmd_snapshot(args) -> None:
    from dmlbench.io import write_text

    config = validate(spec_from_arg(args.spec), "--spec") if args.spec else load_config(_need(args, "config"))
    out = Path(args.out or layout.snapshot_file(args.results))
    write_text(
        out,
        "# The effective config of this run (defaults filled), written by `dmlbench snapshot`.\n"
        + yaml.safe_dump(config, sort_keys=False),
    )
    print(out)


def _run_scorer(args, config: Path) -> str:
    """--scorer, or the scorer the results' own config names (report.scorer of its snapshot)."""
    if args.scorer:
        return args.scorer
    if not config.is_file():
        raise DmlbenchError(
            f"{config} does not exist, so the run's report.scorer is unknown; give --scorer, or "
            f"{'--config or ' if hasattr(args, 'config') else ''}--results naming the run's"
        )
    return load_config(config)["report"]["scorer"]


def cmd_progress(args) -> None:
    from dmlbench.config.progress import summary

    config = Path(args.config or layout.snapshot_file(args.results))
    if not args.config and not config.is_file():
        # before the snapshot exists (or for a target that needs none): the config spec the workflow wrote
        config = Path(layout.spec_file("config", results=args.results))
    if not config.is_file():
        raise DmlbenchError(
            f"{layout.snapshot_file(args.results)} does not exist yet (the workflow writes it first); "
            f"give --config <your config>"
        )
    print(summary(load_config(config), args.results, args.logs), end="")


def cmd_figures(args) -> None:
    from dmlbench.report.figures import write_figures

    tables = Path(args.tables or layout.tables_dir(args.results))
    figures = Path(args.out or layout.figures_dir(args.results))
    results = tables.parent  # results/tables -> results/: the snapshot and data sit beside the tables
    config = Path(args.config or layout.snapshot_file(results))
    data = Path(args.data or layout.data_dir(results))
    paths = write_figures(tables, figures, scorer=_run_scorer(args, config), config=config, data_dir=data)
    for p in paths:
        print(p)


def cmd_render(args) -> None:
    """Render report/report.qmd with Quarto (HTML + PDF) against a results folder."""
    from dmlbench.report.render import render_report

    scorer = _run_scorer(args, Path(layout.snapshot_file(args.results)))
    outputs = render_report(args.qmd, args.results, scorer=scorer, log=args.log, out_dir=args.out)
    print(", ".join(str(p) for p in outputs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmlbench", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("--version", action="version", version=f"dmlbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a config against the schema and print it with defaults")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "list", help="what a config may name (heads, losses, miners, scorers, sources), with parameters and defaults"
    )
    p.add_argument("kind", choices=("heads", "losses", "miners", "scorers", "sources"))
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("prepare", help="read a dataset source into results/data/{dataset}.npz")
    _config_args(p)
    p.add_argument("--dataset")
    p.add_argument("--out")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train all cases of one (dataset, n_anomaly, method, n_per_class, seed)")
    _config_args(p)
    _run_keys(p)
    p.add_argument("--data", help="dataset npz (default results/data/{dataset}.npz)")
    p.add_argument(
        "--out", nargs="+", help="run folder per run (default results/runs/{dataset}/a{n}/{method}/n{N}/s{seed})"
    )
    p.add_argument("--job", help="job record to write last (JSON: the job's phases; results/jobs/train/...)")
    p.add_argument(
        "--device",
        default=os.environ.get("DMLBENCH_DEVICE", "auto"),
        help="auto, cpu, cuda or cuda:N; auto and cuda take a GPU no other train job holds where several are "
        "visible (CUDA_VISIBLE_DEVICES is respected)",
    )
    p.add_argument(
        "--gpu-locks",
        help="folder of the per-GPU locks (default $DMLBENCH_GPU_LOCKS, else <results>/.locks)",
    )
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--cache-dir", help="run and compile caches (default $DMLBENCH_CACHE_DIR, else <results>/.cache)")
    p.add_argument(
        "--no-run-cache",
        action="store_true",
        help="train every run, restore none from the run cache (also: DMLBENCH_RUN_CACHE=off)",
    )
    p.add_argument(
        "--tuned",
        nargs="+",
        help="best.json of each tuned method (results/tuning/...): the per-case parameters of its <label>_tuned run",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="tune one method on every case of one (dataset, n_anomaly, n_per_class, seed)")
    _config_args(p)
    _run_keys(p)
    p.add_argument("--data", help="dataset npz (default results/data/{dataset}.npz)")
    p.add_argument("--out", help="folder of best.json and trials.csv (default results/tuning/{dataset}/a{n}/...)")
    p.add_argument(
        "--storage",
        help="Optuna storage: an RDB URL (default tuning.storage; null: a journal file in --out, which resumes)",
    )
    p.add_argument("--device", default=os.environ.get("DMLBENCH_DEVICE", "auto"), help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("tuning-tables", help="tune jobs' best.json and trials.csv -> tables/tuning_*.parquet")
    p.add_argument("--best", nargs="+", required=True, help="best.json of every tune job")
    p.add_argument("--trials", nargs="+", required=True, help="trials.csv of every tune job")
    p.add_argument("--out", help="tables folder (default results/tables)")
    p.set_defaults(func=cmd_tuning_tables)

    p = sub.add_parser("score", help="score every test image of a run against its reference set")
    _config_args(p)
    p.add_argument("--run", nargs="+", required=True, help="run folders written by `dmlbench train`")
    p.add_argument("--out", nargs="+", required=True, help="scores parquet to write, one per --run")
    p.add_argument("--job", help="job record to write last (JSON: the job's phases; results/jobs/score/...)")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("aggregate", help="scores -> results/tables/*.parquet")
    p.add_argument("--scores", nargs="*", help="score parquets (default: all under results/scores)")
    p.add_argument("--benchmarks", nargs="*", help="Snakemake benchmark TSVs (default: all under --benchmark-root)")
    p.add_argument("--benchmark-root", default="benchmarks")
    p.add_argument("--runs", nargs="*", help="run.json files for runs.parquet (default: those of the score files)")
    p.add_argument("--jobs", nargs="*", help="job records of the train and score jobs (default: all under --job-root)")
    p.add_argument("--job-root", help="folder of the job records (default <results>/jobs)")
    p.add_argument("--out", help="tables folder (default results/tables)")
    p.set_defaults(func=cmd_aggregate)

    p = sub.add_parser("closed-set", help="closed-set runs (a0) -> tables/tsne.parquet and tables/closed_set.parquet")
    p.add_argument("--runs", nargs="+", required=True, help="run folders of n_anomaly 0")
    p.add_argument("--points", type=int, default=2000, help="test images per t-SNE map")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--out", help="tables folder (default results/tables)")
    p.set_defaults(func=cmd_closed_set)

    p = sub.add_parser("snapshot", help="write the effective config (defaults filled) to results/config.yaml")
    _config_args(p)
    p.add_argument("--out")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("figures", help="tables -> results/figures/*.{svg,png,vl.json} and table CSVs")
    p.add_argument("--tables")
    p.add_argument("--out")
    p.add_argument("--scorer", help="score column of the figures (default: the config's report.scorer)")
    p.add_argument("--config", help="effective config (default results/config.yaml, from `dmlbench snapshot`)")
    p.add_argument("--data", help="folder of the dataset npz files, for the worst-misses images (default results/data)")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("render", help="render the Quarto report (needs the quarto binary)")
    p.add_argument("--qmd", default="report/report.qmd")
    p.add_argument("--scorer", help="score column of the report (default: report.scorer of <results>/config.yaml)")
    p.add_argument("--log", default="logs/render.log", help="Quarto's output (default logs/render.log)")
    p.add_argument("--out", help="folder for report.html and report.pdf (default: report/_output, where Quarto writes)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("progress", help="the train and score jobs done, running and left, with an estimate")
    p.add_argument("--config", help="the run's config (default <results>/config.yaml, the workflow's snapshot)")
    p.add_argument("--logs", default="logs", help="the workflow's log folder (default logs)")
    p.set_defaults(func=cmd_progress)

    # --results after the subcommand too (`dmlbench render --results run2/results`): SUPPRESS keeps
    # the value given before it, or its default, when it is not given here.
    for p in sub.choices.values():
        p.add_argument("--results", default=argparse.SUPPRESS, help="results folder (default: results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "train" else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        args.func(args)
    except DmlbenchError as exc:
        print(f"dmlbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(argv: list[str] | None = None) -> None:
    """The `dmlbench` command as a process: :func:`main`, then exit without the interpreter's
    clean-up. Every output is complete on disk when main returns (written and renamed, dmlbench.io);
    what the clean-up would do - tear down thousands of modules of torch, fastai and pandas -
    costs a train job about 2 s of CPU (measured: bench/overhead.py), for nothing."""
    status = main(argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
