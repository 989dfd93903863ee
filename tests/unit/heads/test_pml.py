"""pytorch-metric-learning losses as a head (head: pml): the stored table of PML's constructors,
every listed loss training a step, logits of the classification losses, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dmlbench.config import pml_params
from dmlbench.errors import ConfigError
from dmlbench.heads import build_head

#: Arguments the table marks as required, with a value PML accepts.
REQUIRED = {"RankedListLoss": {"margin": 0.4, "Tn": 10}}


def test_the_stored_table_is_the_installed_pml():
    """The config check reads _pml_signatures.py instead of importing PML: it must say what the
    installed PML's constructors take (rewrite it with `python -m dmlbench.config.pml_params --write`)."""
    assert pml_params.introspect() == pml_params.table()
    assert pml_params.installed_version() == pml_params.table()[0]


def _balanced_batch(n_classes: int = 3, per_class: int = 4, dim: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    x = torch.randn(len(labels), dim, generator=gen) + 2.0 * F.one_hot(labels, dim).float()
    return x, labels


@pytest.mark.parametrize("loss", sorted(pml_params.table()[1]))
def test_every_listed_loss_trains_a_step(loss):
    """Built by the head with the normal classes and the embedding width, a step gives a finite loss
    and a gradient to the embedding; a classification loss's weights are the head's parameters and
    move in one optimiser step; a pair loss has no logits."""
    torch.manual_seed(0)
    head = build_head("pml", 8, 3, loss=loss, **REQUIRED.get(loss, {}))
    x, labels = _balanced_batch()
    x.requires_grad_(True)
    params = [p for p in head.parameters()]
    before = [p.detach().clone() for p in params]
    value = head.loss(x, labels)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert x.grad is not None
    if params:
        torch.optim.SGD(params, lr=0.1).step()
        assert any(not torch.equal(b, p) for b, p in zip(before, params)), loss
    assert head.has_logits is pml_params.has_logits(loss)
    assert head.balanced_batches is not head.has_logits
    if head.has_logits:
        assert head.logits(x.detach()).shape == (12, 3)
    else:
        with pytest.raises(ConfigError, match="has no logits"):
            head.logits(x.detach())


def test_normalised_softmax_logits_by_hand():
    """NormalizedSoftmaxLoss: logits = cos(x, W_j) / temperature, the loss their cross-entropy
    (Zhai & Wu 2018), computed from F.normalize and matmul."""
    torch.manual_seed(0)
    head = build_head("pml", 8, 3, loss="NormalizedSoftmaxLoss", temperature=0.1)
    x, labels = _balanced_batch()
    w = head.loss_fn.W  # [embedding, classes]
    expected = F.normalize(x, dim=1) @ F.normalize(w, dim=0) / 0.1
    torch.testing.assert_close(head.logits(x), expected)
    torch.testing.assert_close(head.loss(x, labels), F.cross_entropy(expected, labels))
    assert [n for n, _ in head.named_parameters()] == ["loss_fn.W"]


def test_supcon_loss_by_hand():
    """SupConLoss (Khosla et al. 2020) on 4 embeddings of 2 classes: for anchor i with positives
    P(i), -1/|P(i)| sum_p log(exp(s_ip/t) / sum_{a != i} exp(s_ia/t)), s = cosine, averaged over
    anchors."""
    head = build_head("pml", 2, 2, loss="SupConLoss", temperature=0.5)
    x = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    labels = torch.tensor([0, 0, 1, 1])
    s = F.normalize(x) @ F.normalize(x).T / 0.5
    total = 0.0
    for i in range(4):
        others = [a for a in range(4) if a != i]
        log_denominator = torch.logsumexp(s[i, others], dim=0)
        positives = [p for p in others if labels[p] == labels[i]]
        total += -sum(s[i, p] - log_denominator for p in positives) / len(positives)
    torch.testing.assert_close(head.loss(x, labels), total / 4)


def test_a_miner_picks_the_triplets_the_loss_sees():
    """TripletMarginLoss with a miner is the loss over the mined triplets only: margin 0.05 on
    distances d(a, p) - d(a, n) + m, averaged over the triplets with a positive value (PML's
    AvgNonZeroReducer); worked with hard triplets of a known batch."""
    head = build_head(
        "pml",
        2,
        2,
        loss="TripletMarginLoss",
        margin=0.5,
        miner={"name": "TripletMarginMiner", "margin": 0.5, "type_of_triplets": "hard"},
    )
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    labels = torch.tensor([0, 0, 1, 1])
    a, p, n = head.miner(x, labels)
    assert len(a) > 0
    e = F.normalize(x)
    d = torch.cdist(e, e)
    per = d[a, p] - d[a, n] + 0.5
    expected = per[per > 0].mean()
    torch.testing.assert_close(head.loss(x, labels), expected)


def test_no_per_sample_loss_and_no_mixup():
    head = build_head("pml", 4, 3, loss="SupConLoss")
    x, labels = _balanced_batch(dim=4)
    with pytest.raises(ConfigError, match="not one per sample"):
        head.loss(x, labels, reduction="none")
    with pytest.raises(ConfigError, match="mixup needs a per-sample loss"):
        head.mixup_loss(x, labels, labels, 0.7)
    torch.testing.assert_close(head.loss(x, labels, reduction="sum"), head.loss(x, labels) * len(labels))


def test_a_batch_without_pairs_still_backpropagates():
    """One image per class gives no positive pair: PML's loss is a constant 0 without a graph; the
    head keeps it differentiable (zero gradient) so the optimiser step is well defined."""
    head = build_head("pml", 4, 3, loss="ContrastiveLoss")
    x = torch.randn(3, 4, requires_grad=True)
    value = head.loss(x, torch.tensor([0, 1, 2]))
    value.backward()
    assert float(value) >= 0 and x.grad is not None


def test_refusals_name_the_loss():
    with pytest.raises(ConfigError, match="unknown pytorch-metric-learning loss 'Nope'"):
        build_head("pml", 4, 3, loss="Nope")
    with pytest.raises(ConfigError, match="takes no argument 'temp'"):
        build_head("pml", 4, 3, loss="SupConLoss", temp=0.1)


def test_pair_losses_train_through_the_job_trainer_on_balanced_batches():
    """RunTrainer feeds a pair loss class-balanced batches (sampling.ClassBalancedBatches), and its
    fit gives no logits and an undefined (NaN) head accuracy."""
    import numpy as np

    from dmlbench.data.sources import Dataset
    from dmlbench.data.splits import run_cases
    from dmlbench.train.batches import case_loaders
    from dmlbench.train.run import RunTrainer
    from dmlbench.train.sampling import ClassBalancedBatches

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 20)
    ds = Dataset(
        x_train=rng.integers(0, 255, (80, 8, 8, 1), dtype=np.uint8),
        y_train=y,
        x_test=rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8),
        y_test=np.repeat(np.arange(4), 10),
        classes=["a", "b", "c", "d"],
    )
    spec = {
        "dataset": "t",
        "source": "digits",
        "class_order": "canonical",
        "flip": False,
        "n_anomaly": 1,
        "method": "sc",
        "head": "pml",
        "method_params": {"loss": "SupConLoss", "mixup": False, "mixup_alpha": 0.4},
        "n_per_class": "all",
        "seed": 0,
        "cases": 1,
        "model": {"backbone": "small_cnn", "embedding_dim": 8, "embedding": "none"},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "lr": 0.01,
            "weight_decay": 0.0,
            "val_fraction": 0.1,
            "crop_padding": 0,
            "optimizer": "adam",
            "precision": "fp32",
            "compile": False,
        },
    }
    trainer = RunTrainer(ds, spec, torch.device("cpu"))
    case = run_cases(ds, spec)[0]
    learn, _ = trainer.learner(case)  # the trainer asks the head for class-balanced batches
    assert isinstance(learn.dls.train, ClassBalancedBatches)
    _, train_dl, _ = case_loaders(trainer.data, case, spec, balanced=True)
    assert isinstance(train_dl, ClassBalancedBatches)
    for _, yb in train_dl:
        # 16 images of the 3 normal classes: 3 classes x 5 images
        assert sorted(torch.bincount(yb, minlength=3).tolist()) == [5, 5, 5]
    arrays, rows = trainer.train_case(case)
    assert "case0_test_logits" not in arrays and arrays["case0_test"].shape == (40, 8)
    assert np.isnan(rows[0]["valid_accuracy"]) and np.isfinite(rows[0]["train_loss"])
