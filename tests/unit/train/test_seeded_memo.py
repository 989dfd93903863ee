"""seeded_memo: a seeded build done twice gives the same module and leaves the same random state
as building afresh, copies are independent, and the memo stays within its size; seeded_state_memo:
the same for a build's weights kept on a device."""

from __future__ import annotations

import torch
from torch import nn

from dmlbench.heads import build_head
from dmlbench.train.models import build_backbone
from dmlbench.train.seeded_memo import seeded_memo, seeded_state_memo


def _build(memo, seed: int, method: str, width: int = 16):
    """A case's fresh model as the training code builds it: seed, backbone, then head."""
    torch.manual_seed(seed)
    backbone = memo("small_cnn", 1, width)
    head = build_head(method, width, 7)
    return backbone, head, torch.get_rng_state()


def test_a_second_method_gets_the_fresh_build_bit_for_bit():
    memo = seeded_memo(build_backbone)
    _build(memo, 3, "arcface")  # the job's first method builds and fills the memo
    got_backbone, got_head, got_state = _build(memo, 3, "cosface")  # from the memo
    want_backbone, want_head, want_state = _build(build_backbone, 3, "cosface")  # afresh
    assert len(memo.cache) == 1
    for got, want in ((got_backbone, want_backbone), (got_head, want_head)):
        a, b = got.state_dict(), want.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(got_state, want_state)  # the head drew from the same random state


def test_other_seeds_and_arguments_build_anew_and_copies_are_independent():
    memo = seeded_memo(build_backbone)
    first, _, _ = _build(memo, 1, "arcface")
    other_seed, _, _ = _build(memo, 2, "arcface")
    _build(memo, 1, "arcface", width=32)
    assert len(memo.cache) == 3
    w = "body.layers.0.weight"  # the first convolution
    assert not torch.equal(first.state_dict()[w], other_seed.state_dict()[w])
    again, _, _ = _build(memo, 1, "arcface")
    assert torch.equal(first.state_dict()[w], again.state_dict()[w])
    with torch.no_grad():
        again.state_dict()[w].add_(1.0)  # training one copy ...
    third, _, _ = _build(memo, 1, "arcface")
    assert torch.equal(first.state_dict()[w], third.state_dict()[w])  # ... leaves the memo as built


def test_the_memo_keeps_the_latest_builds_within_its_size():
    def linear(n):
        return nn.Linear(n, n, bias=False)  # n*n float32 parameters

    memo = seeded_memo(linear, max_bytes=2 * 10 * 10 * 4)  # room for two 10x10 layers
    for seed in range(3):
        torch.manual_seed(seed)
        memo(10)
    assert len(memo.cache) == 2
    torch.manual_seed(0)
    state = torch.get_rng_state()
    memo(10)  # seed 0 was evicted: built again, which consumes the random numbers again
    assert not torch.equal(torch.get_rng_state(), state) and len(memo.cache) == 2


def test_unhashable_arguments_are_built_without_the_memo():
    memo = seeded_memo(lambda sizes: nn.Linear(*sizes))
    memo([3, 2])
    assert len(memo.cache) == 0


# --------------------------------------------------------------------------- state memo
def test_the_state_memo_gives_a_fresh_builds_weights_and_random_state_again():
    memo = seeded_state_memo(build_backbone)
    torch.manual_seed(5)
    first = memo("cpu", "small_cnn", 1, 16)
    after_first = torch.get_rng_state()
    torch.manual_seed(5)
    again = memo("cpu", "small_cnn", 1, 16)  # from the memo: the same tensors, no build
    assert again is first and len(memo.cache) == 1
    assert torch.equal(torch.get_rng_state(), after_first)  # the head draws what it drew after a build
    torch.manual_seed(5)
    want = build_backbone("small_cnn", 1, 16).state_dict()
    assert want.keys() == first.keys() and all(torch.equal(want[k], first[k]) for k in want)
    assert torch.equal(torch.get_rng_state(), after_first)


def test_the_state_memo_keys_the_device_and_its_tensors_live_there():
    memo = seeded_state_memo(build_backbone)
    torch.manual_seed(1)
    on_cpu = memo("cpu", "small_cnn", 1, 16)
    torch.manual_seed(1)
    on_meta = memo(torch.device("meta"), "small_cnn", 1, 16)
    assert len(memo.cache) == 2
    assert all(t.device.type == "cpu" for t in on_cpu.values())
    assert all(t.device.type == "meta" for t in on_meta.values())


def test_the_state_memo_holds_copies_and_keeps_within_its_size():
    def linear(n):
        return nn.Linear(n, n, bias=False)

    memo = seeded_state_memo(linear, max_bytes=2 * 10 * 10 * 4)
    torch.manual_seed(0)
    module = linear(10)
    torch.manual_seed(0)
    state = memo("cpu", 10)
    assert state["weight"].data_ptr() != module.weight.data_ptr()
    for seed in (1, 2):
        torch.manual_seed(seed)
        memo("cpu", 10)
    assert len(memo.cache) == 2  # seed 0's weights were evicted
