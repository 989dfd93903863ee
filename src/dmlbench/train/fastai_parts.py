"""The fastai-dependent parts of the training loop, each a named top-level class.

A module of its own because importing fastai takes seconds: only the train stage imports it
(dmlbench.train.learner, dmlbench.train.run); commands that never train (validate, score,
aggregate) do not pay for it.

- DeviceAvgMetric, DeviceSmoothLoss: fastai's loss and metric averages kept on the device;
- HeadMixUp: fastai's MixUp with the head's own mixup loss and device-side draws;
- FastOptimWrapper: fastai's optimiser wrapper with cheaper hyper-parameter reads;
- DeviceRecorder: fastai's Recorder keeping the epoch's averages on the device (no .item());
- EpochLog: one train_log.csv row per epoch, and the stop on a NaN or infinite loss; on a GPU the
  values are copied to pinned host memory without blocking and read an epoch later, so the host
  never waits for the epoch that just ended.
"""

from __future__ import annotations

import logging
import math
import time

import torch
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.learner import Metric, Recorder
from fastai.optimizer import OptimWrapper
from fastai.torch_core import find_bs

from dmlbench.errors import TrainingError

log = logging.getLogger("dmlbench.train")


class DeviceAvgMetric(Metric):
    """fastai's AvgMetric/AvgLoss (batch-size-weighted mean over an epoch) accumulated on
    the device: fastai's versions move every batch's value to the CPU (a host sync per
    step); the value is read once, by the Recorder at the end of the epoch."""

    def __init__(self, func=None, name: str = "loss"):
        self.func, self._name = func, name

    def reset(self):
        self.total, self.count = 0.0, 0

    def accumulate(self, learn):
        bs = find_bs(learn.yb)
        value = learn.loss.mean() if self.func is None else self.func(learn.pred, *learn.yb)
        self.total = self.total + value.detach().float() * bs
        self.count += bs

    @property
    def value(self):
        return self.total / self.count if self.count else None

    @property
    def name(self):
        return self._name


class DeviceSmoothLoss(Metric):
    """fastai's AvgSmoothLoss (exponential moving average, debiased) kept on the device."""

    def __init__(self, beta: float = 0.98):
        self.beta = beta
        self.reset()

    def reset(self):
        self.count, self.val = 0, None

    def accumulate(self, learn):
        loss = learn.loss.detach().float().mean()
        self.count += 1
        self.val = torch.lerp(loss, torch.zeros_like(loss) if self.val is None else self.val, self.beta)

    @property
    def value(self):
        return None if self.val is None else self.val / (1 - self.beta**self.count)


class DeviceRecorder(Recorder):
    """fastai's Recorder with the epoch's loss and metric averages left on the device: fastai's
    calls ``.item()`` on each of them after the training and after the validation pass, two
    host syncs per epoch that drain the device's queue. The values (tensors) are read by
    EpochLog, an epoch later. Registered under fastai's name (``learn.recorder``)."""

    def __init__(self, beta: float = 0.98, **kwargs):
        super().__init__(beta=beta, **kwargs)
        self.loss, self.smooth_loss = DeviceAvgMetric(name="loss"), DeviceSmoothLoss(beta=beta)

    @property
    def name(self):
        return "recorder"

    def after_train(self):
        self.log += [m.value for m in self._train_mets]

    def after_validate(self):
        self.log += [m.value for m in self._valid_mets]


class HeadMixUp(MixUp):
    """fastai's MixUp (inputs mixed, lam >= 0.5 on the batch's own labels), with the two
    label terms combined by the head's own `mixup_loss`: one call per step, so stateful
    heads (SphereFace's annealing counter, CenterLoss's centres) advance once, not twice.
    The mixing weights and the partner permutation are drawn on the device (fastai draws
    them on the CPU and copies them over: a host sync per step)."""

    def __init__(self, alpha: float = 0.4):
        super().__init__(alpha)
        self.alpha, self._beta = float(alpha), None

    def before_batch(self):
        x, y = self.x, self.y
        if self._beta is None or self._beta[0] != x.device:
            # torch.full: a fill kernel on the device; torch.tensor(alpha, device=...) would be a
            # blocking host-to-device copy (a sync) on the first batch
            a = torch.full((), self.alpha, device=x.device)
            # validate_args=False: the argument checks read values back to the host
            self._beta = (x.device, torch.distributions.Beta(a, a, validate_args=False))
        lam = self._beta[1].sample((y.size(0),))
        self.lam = torch.maximum(lam, 1 - lam)
        shuffle = torch.randperm(y.size(0), device=x.device)
        self.yb1 = tuple(t[shuffle] for t in self.yb)
        weight = self.lam.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        self.learn.xb = tuple(torch.lerp(t[shuffle], t, weight) for t in self.xb)
        if not self.stack_y:
            self.learn.yb = tuple(torch.lerp(t1.float(), t.float(), self.lam) for t1, t in zip(self.yb1, self.yb))

    def lf(self, pred, *yb):
        if not self.training:
            return self.old_lf(pred, *yb)
        return self.old_lf.head.mixup_loss(pred.float(), yb[0], self.yb1[0], self.lam)


class FastOptimWrapper(OptimWrapper):
    """fastai's wrapper of a PyTorch optimiser, with `hypers` built without fastcore's
    generic helpers: the one-cycle scheduler and the Recorder read it five times a step,
    which cost more host time than the fused optimiser step itself."""

    @property
    def hypers(self):
        fwd, out = self.fwd_map, []
        for group in self.opt.param_groups:
            h = {}
            for k, v in group.items():
                if k == "params":
                    continue
                if isinstance(v, (list, tuple)):
                    for i, v_ in enumerate(v):
                        h[fwd.get(f"{k}__{i}", f"{k}__{i}")] = v_
                else:
                    h[fwd.get(k, k)] = v
            out.append(h)
        return out


class EpochLog(Callback):
    """Appends one row per epoch to ``rows`` (case, epoch, train and validation loss, validation
    accuracy, seconds) and stops the fit with a TrainingError when a loss is NaN or infinite.
    ``epoch_offset`` is added to the epoch of a fit that continues another (fine-tuning).
    ``device``: where the model runs.

    The read order on CUDA (``lag`` 1, the default there): at the end of epoch e, the epoch's three
    values are stacked on the device and copied to pinned host memory without blocking
    (``non_blocking=True``), and an event is recorded behind the copy; then the log waits for the
    event of epoch e - 1 - a copy queued before epoch e's kernels, done long since - and reads
    epoch e - 1's numbers from host memory. So the host never waits for epoch e's kernels at its
    end: it goes on queuing epoch e + 1 while the device finishes epoch e. (Reading the device
    tensors of epoch e - 1 with ``float()`` would not do this: the copy ``float()`` queues runs on
    the same stream, behind all of epoch e.) The rest are read at the end of the fit. A NaN loss is
    then reported one epoch later (the error names the epoch it appeared in). On the CPU (``lag``
    0) each epoch is read at its end. On CUDA an epoch's seconds are the device time between two
    events recorded at its start and end (no sync); on the CPU, the wall time."""

    order = 60  # after the Recorder has its epoch values

    def __init__(
        self,
        method: str,
        case: int,
        device: torch.device,
        rows: list[dict],
        epoch_offset: int = 0,
        lag: int | None = None,
        progress=None,
        position: int = 0,
    ):
        super().__init__()
        self.method, self.case, self.device, self.rows = method, case, device, rows
        # the run's RunProgress (dmlbench.train.progress) and this case's place among its cases
        self.progress, self.position = progress, position
        self.epoch_offset = epoch_offset  # a second fit (fine-tuning) continues the epoch count
        self.lag = (1 if device.type == "cuda" else 0) if lag is None else lag
        self.pending: list[tuple] = []

    def _mark(self):
        if self.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))  # the job's device, not the current one
            return event
        return time.perf_counter()

    @staticmethod
    def _host_buffer() -> torch.Tensor:
        """Page-locked host memory for one epoch's three values (a copy into it need not block)."""
        return torch.empty(3, dtype=torch.float32, pin_memory=True)

    def _snapshot(self, values):
        """The epoch's values on their way to the host: (values, None) on the CPU; on CUDA
        (a pinned host tensor, the event recorded behind the copy into it), without waiting."""
        if self.device.type != "cuda":
            return values, None
        stacked = torch.stack(
            [
                v.detach().float().reshape(())
                if isinstance(v, torch.Tensor)
                else torch.full((), float(v), device=self.device)
                for v in values
            ]
        )
        host = self._host_buffer()
        host.copy_(stacked, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record(torch.cuda.current_stream(self.device))
        return host, copied

    def before_fit(self):
        self.pending = []
        if self.progress is not None:
            self.progress.start()

    def before_epoch(self):
        self.start = self._mark()

    def after_epoch(self):
        end = self._mark()
        self.pending.append((self.epoch, *self._snapshot(self.learn.recorder.values[-1]), self.start, end))
        while len(self.pending) > self.lag:
            self._read(*self.pending.pop(0))

    def after_fit(self):
        while self.pending:
            self._read(*self.pending.pop(0))

    def _read(self, epoch: int, values, copied, start, end):
        # The host waits: for the copy of the epoch's values (CUDA), queued an epoch ago, or for the
        # device-side averages themselves (the CPU: nothing to wait for).
        if copied is not None:
            copied.synchronize()
        train_loss, valid_loss, accuracy = (float(v) for v in values)
        epoch += self.epoch_offset
        if not (math.isfinite(train_loss) and math.isfinite(valid_loss)):
            self.pending = []
            raise TrainingError(
                f"method '{self.method}', case {self.case}, epoch {epoch}: the loss became "
                f"{'NaN' if math.isnan(train_loss) or math.isnan(valid_loss) else 'infinite'} "
                f"(train {train_loss}, validation {valid_loss}); lower training.lr or check the "
                f"method's parameters. No embeddings were written."
            )
        if isinstance(end, float):
            seconds = end - start
        else:  # both events are behind the copy waited for above
            seconds = start.elapsed_time(end) / 1000.0
        self.rows.append(
            {
                "case": self.case,
                "epoch": epoch,
                "train_loss": train_loss,
                "valid_loss": valid_loss,
                "valid_accuracy": accuracy,
                "seconds": seconds,
            }
        )
        if self.progress is not None:
            log.info(
                "%s",
                self.progress.epoch_line(self.case, self.position, epoch, train_loss, valid_loss, accuracy, seconds),
            )
        else:
            log.info(
                "case %d epoch %d: train loss %.4f, valid loss %.4f, valid acc %.4f, %.1fs",
                self.case,
                epoch,
                train_loss,
                valid_loss,
                accuracy,
                seconds,
            )


class BestEpoch(Callback):
    """The original implementation's ``select_best_epoch`` (docs/original.md): at the end of the
    fit the model holds its state (parameters and buffers) of the epoch of lowest validation
    loss, as fastai's SaveModelCallback (monitor ``valid_loss``) left it in the original.

    No host sync per epoch: the epoch's validation loss stays on the device, and every tensor of
    the kept state is replaced by ``torch.where(better, current, kept)``; the kept epoch is read
    once, at the end of the fit (``kept_epoch``, counted as EpochLog counts, with
    ``epoch_offset``). A NaN loss is never better than a number."""

    order = 61  # after the Recorder has its epoch values

    def __init__(self, epoch_offset: int = 0):
        super().__init__()
        self.epoch_offset = epoch_offset
        self.kept_epoch: int | None = None

    def before_fit(self):
        self.kept = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}
        self._best_loss = self._best_epoch = None

    def after_epoch(self):
        loss = self.learn.recorder.values[-1][1].detach().float()  # the device average, no copy
        epoch = torch.full((), self.epoch, dtype=torch.long, device=loss.device)
        if self._best_loss is None:
            better = torch.ones((), dtype=torch.bool, device=loss.device)  # the first epoch is kept
        else:
            better = (loss < self._best_loss) | torch.isnan(self._best_loss)
        with torch.no_grad():
            for k, v in self.learn.model.state_dict().items():
                self.kept[k].copy_(torch.where(better.to(v.device), v.detach(), self.kept[k]))
        self._best_loss = loss if self._best_loss is None else torch.where(better, loss, self._best_loss)
        self._best_epoch = epoch if self._best_epoch is None else torch.where(better, epoch, self._best_epoch)

    def after_fit(self):
        if self._best_epoch is None:
            return
        self.learn.model.load_state_dict(self.kept)
        self.kept_epoch = int(self._best_epoch) + self.epoch_offset
