"""The run cache: the files of every trained run, kept under a key of everything that made them.

A train job trains several runs (every method of a condition, dmlbench.train.job). Snakemake deletes
a job's outputs before it runs the job again - after a kill, after a failure, after a change of
its parameters - so without a cache a rerun would retrain every run of the job, not only what
was lost. Each run's three files (embeddings.npz, train_log.csv, run.json) are therefore linked
here as soon as they are written, and a run whose key is found is restored instead of trained:

- a job killed during its fourth run retrains the fourth run only;
- a change of one method's parameters retrains that method's runs only (the job's other runs
  have the keys they had);
- a new method trains that method only.

The key is a SHA-256 of the run's spec (dataset, condition, method and its parameters, model,
training recipe, seed), the dataset file's bytes, the dmlbench source (dmlbench.provenance's
code hash), the torch and fastai versions, the device and the CPU threads: a run is a function
of these (bit for bit on the CPU). Entries are hard links to the outputs (no second copy on
disk) under ``<cache>/runs/<run path>/<key>/``, where ``<cache>`` is $DMLBENCH_CACHE_DIR or
results/.cache (dmlbench.train.compile_cache.cache_root); a run folder keeps only its latest entry.
Each entry appears complete or not at all (written as a temporary folder, then renamed).

To retrain regardless (e.g. to measure training time again), delete ``<cache>/runs`` or set
``DMLBENCH_RUN_CACHE=off``. Without a shared filesystem (a cloud run, each job in a container of
its own) the cache lives and dies with the job: runs are then retrained, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from dmlbench.io import link_or_copy, write_json
from dmlbench.layout import KEY_PATTERN, RUN_FILES

log = logging.getLogger("dmlbench.train.run_cache")

SWITCH_ENV = "DMLBENCH_RUN_CACHE"


def enabled() -> bool:
    """False when $DMLBENCH_RUN_CACHE is off, 0, false or no."""
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


def file_digest(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 (hex) of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def run_key(spec: dict, identity: dict) -> str:
    """SHA-256 (hex) of the run's spec and ``identity`` (data digest, code hash, versions, device,
    threads), each as canonical JSON (sorted keys)."""
    blob = json.dumps({"spec": spec, "identity": identity}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _run_path(run_dir: Path) -> str:
    """The run's path below results/runs ({dataset}/a{n}/{method}/n{N}/s{seed}), or a digest of its
    absolute path for a folder outside that layout."""
    posix = run_dir.resolve().as_posix()
    m = KEY_PATTERN.search(run_dir.as_posix())
    return m.group(0) if m else "other/" + hashlib.sha256(posix.encode()).hexdigest()[:16]


class RunCache:
    """The run cache below ``root`` (``<root>/runs``)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "runs"

    def entry(self, run_dir: str | os.PathLike, key: str) -> Path:
        return self.root / _run_path(Path(run_dir)) / key[:32]

    def restore(self, run_dir: str | os.PathLike, key: str) -> bool:
        """Put the cached files of ``key`` into ``run_dir`` (run.json last, marked
        ``restored_from_cache``); False when there is no complete entry."""
        entry = self.entry(run_dir, key)
        if not all((entry / name).is_file() for name in RUN_FILES):
            return False
        try:
            run = json.loads((entry / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        out = Path(run_dir)
        for name in RUN_FILES[:-1]:
            link_or_copy(entry / name, out / name)
        run["restored_from_cache"] = str(entry)
        write_json(out / "run.json", run)
        log.info("%s: restored from the run cache (%s)", out, entry)
        return True

    def store(self, run_dir: str | os.PathLike, key: str) -> Path:
        """Link the run's finished files into the cache under ``key``, and drop the folder's
        older entries (other keys). Returns the entry."""
        entry = self.entry(run_dir, key)
        parent = entry.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{entry.name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            for name in RUN_FILES:
                link_or_copy(Path(run_dir) / name, tmp / name)
            if entry.exists():
                shutil.rmtree(entry)
            os.replace(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for old in parent.iterdir():
            if old.name != entry.name and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        return entry
