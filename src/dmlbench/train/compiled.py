"""The compile life cycle of a job's backbone: torch.compile'd once per job (and only for jobs large
enough to repay it, ``training.compile: auto``), warmed up before any case, and replaced by the
eager backbone at its first failure. Evaluation runs the eager backbone."""

from __future__ import annotations

import logging
import time

import torch

from dmlbench.errors import ConfigError
from dmlbench.train import compile_cache
from dmlbench.train.models import EmbeddingNet

log = logging.getLogger("dmlbench.train")

#: compile 'auto' compiles a job only when it trains on at least this many images (cases x
#: epochs x images per epoch): compilation costs ~10 s (warm inductor cache) to ~60 s (cold) per
#: job process, and saves some 20-30 % of the step time, so smaller jobs finish sooner eager.
COMPILE_MIN_IMAGES = 2_000_000


def resolve_compile(value, device: torch.device, train_images: int | None = None) -> bool:
    """`training.compile`: auto compiles on CUDA only, and only a job that trains on at least
    COMPILE_MIN_IMAGES images (when `train_images` is known); true/false force it on or off."""
    if value in (None, "auto"):
        return device.type == "cuda" and (train_images is None or train_images >= COMPILE_MIN_IMAGES)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    raise ConfigError(f"training.compile {value!r} is unknown; allowed values: auto, true, false")


def channels_last_view(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the strides of an NHWC tensor seen as NCHW, when it is channels_last already.

    A dimension of size 1 has no stride that matters, so a 1-channel batch is channels_last
    whatever its channel stride: the batches (an NHWC uint8 tensor permuted) have stride 1 there,
    a tensor made NCHW and then ``.contiguous(channels_last)`` keeps H*W. torch.compile guards on
    every stride, so the two would compile two graphs (a recompile at the first training step,
    10-60 s on a GPU). This view (no copy) gives every channels_last input the same strides."""
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
        return x
    _, c, h, w = x.shape
    strides = (h * w * c, 1, w * c, c)
    return x if x.stride() == strides else x.as_strided(x.shape, strides)


class CompiledBackbone:
    """The torch.compile'd backbone of a job's model, used for its training steps, and its life
    cycle: compiled once per job, warmed up, and replaced by the eager backbone at its first
    failure.

    `compile(batch_shape)` compiles the backbone, installs this object as the model's training
    forward and runs one forward and backward on a random batch of `batch_shape` [B, C, H, W]
    (the training batches' shape: a pair loss's class-balanced batches hold c * m images, see
    dmlbench.train.sampling.balanced_batch_size), once in each of the training ``states`` (a
    fine-tuned model's frozen body, then the whole model: torch.compile guards on each
    parameter's ``requires_grad``), so that compilation (AOTAutograd compiles the backward at the
    first backward) happens — and fails, if it fails — before any case, and no training step
    recompiles. Inputs are seen through :func:`channels_last_view`. A failure at any point (the compile call, the warm-up,
    or a later training step: compile errors surface at the first call, as any type) falls back
    to the eager backbone for the rest of the job and logs one warning.

    What run.json records: `compiled` (the compiled forward is in use), `fallback` (the failure
    as 'Type: first line', or None), `seconds` (compile and warm-up wall time) and `cache` (what
    the compile found in Inductor's caches, dmlbench.train.compile_cache.outcome; None when nothing was
    compiled).
    """

    def __init__(self, model: EmbeddingNet, options: dict | None = None):
        self.model, self.options = model, options or {}
        self.compiled, self.fallback, self.seconds = False, None, 0.0
        self.cache: dict | None = None
        self._forward = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._forward is not None:
            try:
                return self._forward(channels_last_view(x))
            except Exception as exc:  # compile errors surface at the first call, as any type
                self._forward = None
                self._failed(exc)
        return self.model.backbone(x)

    def compile(self, batch_shape: tuple[int, int, int, int], device: torch.device, states=()) -> None:
        """``states``: callables that each put the model in one state training will use, the last
        the one training starts from (default: the model as it is)."""
        t0 = time.perf_counter()
        before = compile_cache.counters()
        try:
            self._forward = torch.compile(self.model.backbone, **self.options)
        except Exception as exc:
            self._failed(exc)
            return
        self.model.set_train_forward(self)
        self.compiled = True
        for state in states or (lambda: None,):
            state()
            if self.compiled:
                self._warm_up(batch_shape, device)
        self.seconds = time.perf_counter() - t0
        self.cache = compile_cache.outcome(before, compile_cache.counters())
        if self.compiled:
            log.info("backbone compiled in %.1fs (forward and backward; caches %s)", self.seconds, self.cache["cache"])

    def _failed(self, exc: BaseException) -> None:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        self.fallback = f"{type(exc).__name__}: {first}"
        self.compiled = False
        self._forward = None
        self.model.set_train_forward(None)
        log.warning("torch.compile failed (%s); training continues in eager mode", self.fallback)

    def _warm_up(self, batch_shape: tuple[int, int, int, int], device: torch.device) -> None:
        """One forward and backward at the training batch shape and layout (an NHWC tensor seen as
        NCHW, as the batches are); the weights are reset per case anyway."""
        gen = torch.Generator(device=device).manual_seed(0)
        b, c, h, w = batch_shape
        x = torch.randn(b, h, w, c, generator=gen, device=device).permute(0, 3, 1, 2)
        self.model.train()
        try:
            out = self.model(x)
            if self.compiled:
                out.float().square().mean().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        except Exception as exc:
            if not self.compiled:
                raise
            self._failed(exc)
        finally:
            self.model.zero_grad(set_to_none=True)
