"""The run cache: a run's files kept under a key of everything that made them, restored complete
(or not at all) into a run folder, one entry per run folder, and the key changing with each input."""

from __future__ import annotations

import json
import os

import pytest

from dmlbench.io import write_json
from dmlbench.train.run_cache import RUN_FILES, RunCache, enabled, file_digest, run_key

RUN = "results/runs/digits/a3/arcface/nall/s0"
SPEC = {"dataset": "digits", "method": "arcface", "seed": 0, "training": {"epochs": 2, "lr": 0.005}}
IDENTITY = {
    "data": "ab" * 32,
    "code": "cd" * 32,
    "versions": {"torch": "2.14.1"},
    "device": "cpu (x86_64)",
    "threads": 1,
}


def _write_run(folder, marker: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "embeddings.npz").write_bytes(b"npz " + marker.encode())
    (folder / "train_log.csv").write_text(f"case,epoch\n0,{marker}\n")
    write_json(folder / "run.json", {"marker": marker, "wall_seconds": 12.5})


def test_the_key_changes_with_every_input():
    key = run_key(SPEC, IDENTITY)
    assert len(key) == 64 and key == run_key(json.loads(json.dumps(SPEC)), dict(reversed(IDENTITY.items())))
    changed = [
        run_key({**SPEC, "seed": 1}, IDENTITY),
        run_key({**SPEC, "training": {"epochs": 3, "lr": 0.005}}, IDENTITY),
    ]
    changed += [run_key(SPEC, {**IDENTITY, k: "other"}) for k in IDENTITY]
    assert len({key, *changed}) == 1 + len(changed)


def _stored_run(tmp_path):
    """A run written and stored in a fresh cache: (cache, run folder, key, cache entry)."""
    cache = RunCache(tmp_path / "cache")
    run = tmp_path / RUN
    _write_run(run, "first")
    key = run_key(SPEC, IDENTITY)
    return cache, run, key, cache.store(run, key)


def test_stored_runs_are_restored_byte_for_byte_as_links(tmp_path):
    cache, run, key, entry = _stored_run(tmp_path)
    assert entry == tmp_path / "cache" / "runs" / "digits/a3/arcface/nall/s0" / key[:32]
    saved = {name: (run / name).read_bytes() for name in RUN_FILES}
    for name in RUN_FILES:  # Snakemake deletes a job's outputs before it runs the job again
        (run / name).unlink()
    assert cache.restore(run, key)
    for name in RUN_FILES[:-1]:
        assert (run / name).read_bytes() == saved[name]
        assert os.stat(run / name).st_ino == os.stat(entry / name).st_ino  # a hard link: no second copy
    restored = json.loads((run / "run.json").read_text())
    assert restored == {"marker": "first", "wall_seconds": 12.5, "restored_from_cache": str(entry)}
    assert not list(run.glob(".*tmp*")) and not list(entry.parent.glob(".*"))


def test_an_unknown_key_or_an_incomplete_entry_restores_nothing(tmp_path):
    cache, run, key, entry = _stored_run(tmp_path)
    for name in RUN_FILES:
        (run / name).unlink()
    assert not cache.restore(run, run_key({**SPEC, "seed": 7}, IDENTITY))
    (entry / "train_log.csv").unlink()  # an entry missing a file is no entry
    assert not cache.restore(run, key)
    assert not any(run.iterdir())


def test_a_run_folder_keeps_only_its_latest_entry(tmp_path):
    cache = RunCache(tmp_path / "cache")
    run = tmp_path / RUN
    _write_run(run, "lr 0.005")
    old = cache.store(run, run_key(SPEC, IDENTITY))
    _write_run(run, "lr 0.01")
    new_key = run_key({**SPEC, "training": {"epochs": 2, "lr": 0.01}}, IDENTITY)
    new = cache.store(run, new_key)
    assert not old.exists() and sorted(p.name for p in new.parent.iterdir()) == [new.name]
    other = tmp_path / "results/runs/digits/a3/cosface/nall/s0"
    _write_run(other, "cosface")
    cache.store(other, run_key({**SPEC, "method": "cosface"}, IDENTITY))
    assert new.exists()  # another run folder's entry does not replace this one's


def test_file_digest_and_the_switch(tmp_path, monkeypatch):
    import hashlib

    data = bytes(range(256)) * 50_000  # 12.8 MB: several read chunks
    (tmp_path / "d.npz").write_bytes(data)
    assert file_digest(tmp_path / "d.npz", chunk=1 << 20) == hashlib.sha256(data).hexdigest()
    for value, on in (("off", False), ("0", False), ("No", False), ("on", True), ("1", True)):
        monkeypatch.setenv("DMLBENCH_RUN_CACHE", value)
        assert enabled() is on
    monkeypatch.delenv("DMLBENCH_RUN_CACHE")
    assert enabled()


@pytest.mark.parametrize("missing", RUN_FILES)
def test_storing_an_incomplete_run_leaves_no_entry(tmp_path, missing):
    cache = RunCache(tmp_path / "cache")
    run = tmp_path / RUN
    _write_run(run, "first")
    (run / missing).unlink()
    with pytest.raises(FileNotFoundError):
        cache.store(run, run_key(SPEC, IDENTITY))
    parent = tmp_path / "cache" / "runs" / "digits/a3/arcface/nall/s0"
    assert not any(parent.iterdir())


def test_a_switch_of_the_original_implementation_changes_the_key_and_one_set_false_does_not():
    """The switches (dmlbench.config.switches) are in the run's spec, so a run trained with one is
    never restored for the same label without it."""
    from dmlbench.config import train_spec, validate

    def key(entry):
        base = {
            "datasets": {"digits": {"source": "digits"}},
            "conditions": [{"dataset": "digits", "n_anomaly": [3]}],
            "methods": {"arcface": entry},
        }
        return run_key(train_spec(validate(base), "digits", 3, "arcface", "all", 0), IDENTITY)

    plain = key({})
    assert key({"untrained_weights": True}) != plain
    assert key({"select_best_epoch": True}) != plain
    assert key({"untrained_weights": False}) == plain
