"""Every command the README shows, typed verbatim in a fresh shell (HOME and a system PATH only,
no venv activated), in a copy of the repository whose `.venv` is this test's environment.

Commands that would train for hours run as dry runs (`snakemake -n`, the benches' own dry-run or
quick flags); `make demo`/`make test`/`make lint` are checked with `make -n` (the suite and CI run
them for real); system set-up (`apt-get`, `docker`, `conda`) is checked against .ci/run or skipped,
saying why. A README command this test does not know how to run fails it: add it to HOW.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV = Path(sys.prefix)

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks, comments stripped, in order."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", README.read_text(), flags=re.M | re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def inline_bench_commands() -> list[str]:
    """Bench commands quoted inline (the Performance table's "rerun" column)."""
    return re.findall(r"`(\.venv/bin/python -m bench\.[^`]+)`", README.read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the repository's tracked files with `.venv` pointing at this environment."""
    dest = tmp_path_factory.mktemp("readme") / "dmlbench"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    (dest / ".venv").symlink_to(VENV, target_is_directory=True)
    return dest


def fresh_shell(command: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """``command`` in bash with nothing of this process's environment but HOME and a system PATH."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    if shutil.which("quarto"):  # Quarto is a system install for users: keep it where the test has it
        env["PATH"] = f"{Path(shutil.which('quarto')).parent}:{env['PATH']}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ok(proc: subprocess.CompletedProcess, command: str) -> None:
    assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


# How each README command is run. The first matching pattern wins.
HOW = [
    (r"^make (demo|test|lint)$", "make -n"),
    (r"^\.venv/bin/snakemake --profile profiles/cloud\b", "cloud"),
    (r"^\.venv/bin/snakemake\b", "snakemake dry run"),
    (r"^\.venv/bin/dmlbench\b", "dmlbench"),
    (r"^\.venv/bin/python -m bench\.", "bench"),
    # CUDA only; its --device cpu mode runs in tests/unit/bench/test_gpu_check.py
    (r"^bench/gpu_check\.sh --device cuda\b", "device check"),
    (r"^apt-get\b", "system packages"),
    (r"^docker\b", "container"),
]


def how(command: str) -> str:
    for pattern, kind in HOW:
        if re.search(pattern, command):
            return kind
    pytest.fail(f"the README command {command!r} is not known to this test: add it to HOW")


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 10
    kinds = {how(c) for c in commands}
    assert {"make -n", "snakemake dry run", "dmlbench", "bench"} <= kinds


@pytest.mark.parametrize("command", [c for c in readme_commands() if re.match(HOW[0][0], c)])
def test_make_targets_exist(project, command):
    ok(fresh_shell(command.replace("make ", "make -n ", 1), project), command)


@pytest.mark.parametrize("command", [c for c in readme_commands() if how(c) == "snakemake dry run"])
def test_snakemake_commands_dry_run_in_a_fresh_shell(project, command):
    """The full study and the Slurm profile: `-n` lists the jobs without running them."""
    proc = fresh_shell(command + " -n", project, timeout=600)
    ok(proc, command)
    assert re.search(r"^total\s+\d+", proc.stdout, re.M), proc.stdout[-2000:]


def test_dmlbench_commands_run_in_order_in_a_fresh_shell(project):
    """The stage-by-stage example, verbatim and in order: it trains one small job on the CPU."""
    commands = [c for c in readme_commands() if how(c) == "dmlbench"]
    needs_run = [c for c in commands if re.search(r"\b(figures|render)\b", c)]
    stages = [c for c in commands if c not in needs_run]
    assert stages, "the README shows no dmlbench stage commands"
    for command in stages:
        ok(fresh_shell(command, project), command)
    assert list((project / "results" / "runs").rglob("embeddings.npz"))


def test_dmlbench_commands_after_a_run(project, test_run, tmp_path):
    """Commands the README runs on a finished run's results (redraw, render), on the test run's."""
    commands = [c for c in readme_commands() if how(c) == "dmlbench" and re.search(r"\b(figures|render)\b", c)]
    if not commands:
        pytest.skip("the README shows no command on a finished run")
    run = tmp_path / "run"
    shutil.copytree(project, run, symlinks=True, ignore=shutil.ignore_patterns("results", "logs"))
    shutil.copytree(test_run / "results", run / "results")
    for command in commands:
        if "render" in command and shutil.which("quarto") is None:
            pytest.skip("quarto not on PATH: the README's render command needs it (https://quarto.org)")
        ok(fresh_shell(command, run), command)


@pytest.mark.parametrize("command", [c for c in readme_commands() if how(c) == "bench"] + inline_bench_commands())
def test_bench_commands_parse(project, command):
    """Each bench accepts the README's arguments: every --flag it uses is one the script has."""
    module = re.search(r"-m (bench\.\w+)", command)[1]
    assert (project / module.replace(".", "/")).with_suffix(".py").is_file(), module
    proc = fresh_shell(f".venv/bin/python -m {module} --help", project, timeout=300)
    ok(proc, f"python -m {module} --help")
    for flag in re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", command):
        assert flag in proc.stdout, f"{module} has no {flag} (README: {command})"
    for placeholder in re.findall(r"<[a-z-]+>", command):
        pytest.fail(f"README command has a placeholder {placeholder}: {command}")


def test_system_packages_are_what_ci_installs():
    """`apt-get install` lines of the README name packages .ci/run installs the same way."""
    ci = (ROOT / ".ci" / "run").read_text()
    for command in (c for c in readme_commands() if how(c) == "system packages"):
        for package in re.findall(r"install -y ((?:[\w.-]+ ?)+)", command)[0].split():
            assert package in ci, f"{package} (README: {command}) is not installed by .ci/run"


@pytest.mark.parametrize("command", [c for c in readme_commands() if how(c) == "cloud"])
def test_cloud_command_names_a_profile_whose_placeholders_the_readme_explains(project, command):
    """The cloud run needs a cluster, a bucket and credentials: its profile is checked, not run.

    Every `<...>` left in profiles/cloud is one the README tells the user to fill in; the same
    workflow on object storage without a shared filesystem runs in tests/storage (fs and S3)."""
    profile = (project / "profiles" / "cloud" / "config.yaml").read_text()
    text = README.read_text()
    assert "Fill in every `<...>` of the profile" in text
    placeholders = set(re.findall(r"<([a-z][a-z -]*)>", profile))
    assert placeholders, "profiles/cloud has no placeholders: then the README's dry run should run it"
    pytest.skip(f"needs a Kubernetes cluster and a GCS bucket with credentials (placeholders {sorted(placeholders)})")


def test_container_commands_build_the_dockerfile():
    commands = [c for c in readme_commands() if how(c) == "container"]
    for command in commands:
        assert re.search(r"docker build .* \.(\s|$)", command), command
    assert (ROOT / "Dockerfile").is_file()
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip(
            "no Docker engine runs here: the image build itself is not tried (tests/storage checks the "
            "Dockerfile statically)"
        )
