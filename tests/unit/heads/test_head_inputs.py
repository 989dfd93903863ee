"""Heads check their inputs: a wrong embedding width, a batch/label mismatch, labels outside the
head's classes or labels that are not integers raise HeadInputError (a DmlbenchError and a
ValueError) naming the head and what is wrong, before any training state changes — for
``loss`` and ``mixup_loss`` of every head."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch

from dmlbench.errors import DmlbenchError, HeadInputError
from dmlbench.heads import HEADS, build_head

METHODS = sorted(HEADS)
B, D, C = 6, 4, 3


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(B, D, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])


def _call(head, kind, emb, labels):
    """`loss`, or `mixup_loss` with `labels` in the position named by `kind`."""
    if kind == "loss":
        return head.loss(emb, labels)
    good = _batch()[1]
    if kind == "mixup_a":
        return head.mixup_loss(emb, labels, good, 0.7)
    return head.mixup_loss(emb, good, labels, 0.7)


LABEL_NAME = {"loss": "labels", "mixup_a": "labels_a", "mixup_b": "labels_b"}
KINDS = list(LABEL_NAME)


def _state(head):
    return {k: v.clone() for k, v in head.state_dict().items()}


def _raises(head, kind, emb, labels, message):
    state = _state(head)
    with pytest.raises(HeadInputError, match=re.escape(message)) as info:
        _call(head, kind, emb, labels)
    assert isinstance(info.value, DmlbenchError) and isinstance(info.value, ValueError)
    # nothing advanced: SphereFace's iteration counter, CenterLoss's centres, weights
    after = head.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_wrong_embedding_width(method, kind):
    head = build_head(method, D, C).train()
    emb, y = _batch()
    _raises(
        head,
        kind,
        emb[:, : D - 1],
        y,
        f"head '{method}': embeddings must be [batch, {D}] (in_features {D}), got shape ({B}, {D - 1})",
    )
    _raises(
        head,
        kind,
        emb.reshape(-1),
        y,
        f"head '{method}': embeddings must be [batch, {D}] (in_features {D}), got shape ({B * D},)",
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_labels_length_differs_from_the_batch(method, kind):
    head = build_head(method, D, C).train()
    emb, y = _batch()
    name = LABEL_NAME[kind]
    _raises(head, kind, emb, y[: B - 1], f"head '{method}': {name} has {B - 1} entries but embeddings has {B} rows")
    _raises(
        head,
        kind,
        emb,
        torch.cat([y, y[:1]]),
        f"head '{method}': {name} has {B + 1} entries but embeddings has {B} rows",
    )
    _raises(head, kind, emb, y.view(2, 3), f"head '{method}': {name} must be 1-D [batch], got shape (2, 3)")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_labels_outside_the_heads_classes(method, kind):
    head = build_head(method, D, C).train()
    emb, y = _batch()
    name = LABEL_NAME[kind]
    too_big, negative = y.clone(), y.clone()
    too_big[4] = C
    negative[1] = -1
    _raises(
        head,
        kind,
        emb,
        too_big,
        f"head '{method}': {name} must be class indices in 0..{C - 1} (the head has {C} classes), "
        f"got values from 0 to {C}",
    )
    _raises(
        head,
        kind,
        emb,
        negative,
        f"head '{method}': {name} must be class indices in 0..{C - 1} (the head has {C} classes), "
        f"got values from -1 to 2",
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", METHODS)
def test_labels_that_are_not_integers(method, kind):
    head = build_head(method, D, C).train()
    emb, y = _batch()
    name = LABEL_NAME[kind]
    message = f"head '{method}': {name} must be integer class indices, got dtype"
    _raises(head, kind, emb, y.float(), f"{message} torch.float32")
    _raises(head, kind, emb, y.bool(), f"{message} torch.bool")


@pytest.mark.parametrize("method", METHODS)
def test_valid_inputs_of_every_integer_dtype_give_the_int64_loss(method):
    head = build_head(method, D, C).eval()
    emb, y = _batch()
    expected = head.loss(emb, y)
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
        torch.testing.assert_close(head.loss(emb, y.to(dtype)), expected, rtol=0, atol=0)
    # the last class is in range, and a [B] mixup weight is accepted
    edge = torch.full((B,), C - 1)
    head.loss(emb, edge)
    head.mixup_loss(emb, y, edge, torch.full((B,), 0.6))


def test_mixup_weight_of_the_wrong_shape():
    head = build_head("arcface", D, C).train()
    emb, y = _batch()
    with pytest.raises(
        HeadInputError,
        match=re.escape(f"head 'arcface': lam must be a number or [batch] = [{B}], got shape ({B - 1},)"),
    ):
        head.mixup_loss(emb, y, y, torch.full((B - 1,), 0.6))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_label_range_on_cuda_is_a_device_side_assert_without_host_sync():
    # In a child process: a device-side assert leaves the CUDA context unusable.
    script = textwrap.dedent(f"""
        import torch
        from dmlbench.heads import build_head
        head = build_head("conventional", {D}, {C}).cuda().train()
        emb, y = torch.randn({B}, {D}, device="cuda"), torch.tensor([0, 1, 2, 0, 1, 2], device="cuda")
        torch.cuda.set_sync_debug_mode("error")   # any synchronising call in the checks raises
        head.loss(emb, y)
        head.mixup_loss(emb, y, y.flip(0), torch.full(({B},), 0.6, device="cuda"))
        torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
        print("valid ok", flush=True)
        y[3] = {C}
        head.loss(emb, y)
        torch.cuda.synchronize()
        print("no assert", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "valid ok" in out.stdout, out.stderr[-2000:]
    assert "no assert" not in out.stdout and out.returncode != 0
    assert "device-side assert" in out.stderr or "Assertion" in out.stderr, out.stderr[-2000:]
