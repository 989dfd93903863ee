"""torch.compile's on-disk caches: where they live, and whether a compile found them warm.

A compile costs some 36 s cold on a GPU and 3-4 s with Inductor's caches warm (FX graphs,
AOTAutograd graphs, Triton kernels), measured in issue 16. Within a job, the backbone is
compiled once: its later runs reuse the compiled frame in memory. Across jobs, the caches on
disk make every job after the first warm — when they are where every job looks:

- ``TORCHINDUCTOR_CACHE_DIR`` (Inductor's FX graph and AOTAutograd caches; PyTorch's default
  is /tmp/torchinductor_<user>, one per machine) and ``TRITON_CACHE_DIR`` (the GPU kernels;
  default ~/.triton/cache) are set to ``<cache>/inductor`` and ``<cache>/triton`` unless the
  user has set them. ``<cache>`` is ``$DMLBENCH_CACHE_DIR`` or ``results/.cache`` of the
  working directory: on a cluster with a shared filesystem every node then reads and writes
  the same caches (Inductor and Triton write each entry under a temporary name and rename it).
  Set ``DMLBENCH_CACHE_DIR`` to a shared folder when results/ is not shared.

Standard library only at import; torch._dynamo is imported only by a compile that happens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "DMLBENCH_CACHE_DIR"
#: The counters that tell a cache hit from a miss (torch._dynamo.utils.counters).
CACHE_COUNTERS = (
    ("inductor", "fxgraph_cache_hit"),
    ("inductor", "fxgraph_cache_miss"),
    ("aot_autograd", "autograd_cache_hit"),
    ("aot_autograd", "autograd_cache_miss"),
    ("frames", "ok"),
)


def cache_root(results: str | os.PathLike = "results") -> Path:
    """The folder of dmlbench's caches: $DMLBENCH_CACHE_DIR, else ``<results>/.cache``."""
    return Path(os.environ.get(CACHE_ENV) or Path(results) / ".cache")


def configure(root: str | os.PathLike) -> dict[str, str]:
    """Point Inductor's and Triton's caches below ``root`` (``inductor/``, ``triton/``) where the
    environment does not already name them. Call before the first compile (both read the
    variables when they first cache something). Returns the two folders in use."""
    root = Path(root).resolve()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(root / "triton"))
    return {"inductor": os.environ["TORCHINDUCTOR_CACHE_DIR"], "triton": os.environ["TRITON_CACHE_DIR"]}


def counters() -> dict[str, int]:
    """Inductor's cache counters so far in this process ({} before any compile)."""
    dynamo = sys.modules.get("torch._dynamo.utils")
    if dynamo is None:
        return {}
    return {f"{group}.{name}": int(dynamo.counters[group][name]) for group, name in CACHE_COUNTERS}


def outcome(before: dict[str, int], after: dict[str, int]) -> dict:
    """What a compile between two :func:`counters` snapshots found.

    ``cache``: ``cold`` (only misses: everything compiled from scratch), ``warm`` (only hits),
    ``partial`` (both), ``reused`` (no new frame compiled: the compiled code of an earlier run of
    this process served), or ``uncached`` (frames compiled without Inductor's caches, e.g. another
    backend). Plus the hit and miss counts."""
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    hits = diff.get("inductor.fxgraph_cache_hit", 0) + diff.get("aot_autograd.autograd_cache_hit", 0)
    misses = diff.get("inductor.fxgraph_cache_miss", 0) + diff.get("aot_autograd.autograd_cache_miss", 0)
    if hits and misses:
        cache = "partial"
    elif misses:
        cache = "cold"
    elif hits:
        cache = "warm"
    elif diff.get("frames.ok", 0) == 0:
        cache = "reused"
    else:
        cache = "uncached"
    return {"cache": cache, "hits": hits, "misses": misses}
