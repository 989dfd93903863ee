"""Unit tests for dmlbench.heads: every loss against an independent formula.

Reference losses are written out here in float64 from first principles
(explicit normalisation, matmul, arccos for angles, log-sum-exp for the
cross-entropy) and never call the heads' own helpers.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlbench.errors import ConfigError
from dmlbench.heads import HEADS, PARAMS, build_head

METHODS = sorted(HEADS)

# Hand-made batch: B=4, D=3, C=3.  Sample 3 is almost antiparallel to its class
# weight (cos θ ≈ −0.9985 < cos(π − 0.5)), so ArcFace's fallback branch is used.
X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.4, 0.8, 0.2], [-2.0, -0.3, 0.2]])
Y = torch.tensor([2, 0, 1, 0])
W = torch.tensor([[1.0, 0.2, -0.1], [0.1, 0.9, 0.3], [-0.2, 0.1, 1.2]])
BIAS = torch.tensor([0.1, -0.2, 0.05])
CENTERS = torch.tensor([[0.3, -0.1, 0.2], [-0.5, 0.4, 0.0], [0.1, 0.1, 0.9]])


# --------------------------------------------------------------------------- references
def ref_ce(logits, y):
    """Per-sample cross-entropy written out: logsumexp(z) − z_y."""
    z_y = logits[torch.arange(len(y)), y]
    return torch.logsumexp(logits, dim=1) - z_y


def unit(v):
    return v / torch.sqrt((v * v).sum(dim=1, keepdim=True))


def replace_target(logits, y, new_target):
    out = logits.clone()
    out[torch.arange(len(y)), y] = new_target
    return out


def cos_and_theta(x, w, y):
    cos = unit(x) @ unit(w).T
    cos_t = cos[torch.arange(len(y)), y]
    return cos, cos_t, torch.arccos(cos_t.clamp(-1, 1))


def ref_loss(method, x, y, w=W, b=BIAS, centers=CENTERS, iteration=0, **p):
    """Per-sample loss of ``method`` in float64, from the papers' formulas."""
    x, w, b, centers = (t.double() for t in (x, w, b, centers))
    p = {**PARAMS[method], **p}
    if method == "conventional":
        return ref_ce(x @ w.T + b, y)
    if method == "l2softmax":
        return ref_ce(p["alpha"] * unit(x) @ w.T + b, y)
    if method == "centerloss":
        d = x - centers[y]
        return ref_ce(x @ w.T + b, y) + p["weight"] / 2 * (d * d).sum(1)
    cos, cos_t, theta = cos_and_theta(x, w, y)
    if method == "arcface":
        s, m = p["scale"], p["margin"]
        target = torch.where(theta + m < math.pi, torch.cos(theta + m), cos_t - m * math.sin(m))
        return ref_ce(s * replace_target(cos, y, target), y)
    if method == "cosface":
        s, m = p["scale"], p["margin"]
        return ref_ce(s * replace_target(cos, y, cos_t - m), y)
    if method == "sphereface":
        m = p["margin"]
        k = torch.clamp(torch.floor(m * theta / math.pi), max=m - 1)
        psi = (-1.0) ** k * torch.cos(m * theta) - 2 * k
        lam = max(p["lambda_min"], p["base"] * (1 + p["gamma"] * iteration) ** (-p["power"]))
        norm = torch.sqrt((x * x).sum(1, keepdim=True))
        return ref_ce(norm * replace_target(cos, y, (lam * cos_t + psi) / (1 + lam)), y)
    raise AssertionError(method)


def ref_logits(method, x, w=W, b=BIAS, **p):
    x, w, b = x.double(), w.double(), b.double()
    p = {**PARAMS[method], **p}
    if method in ("conventional", "centerloss"):
        return x @ w.T + b
    if method == "l2softmax":
        return p["alpha"] * unit(x) @ w.T + b
    cos = unit(x) @ unit(w).T
    if method == "sphereface":
        return torch.sqrt((x * x).sum(1, keepdim=True)) * cos
    return p["scale"] * cos


def make_head(method, w=W, n_classes=3, **params):
    head = build_head(method, w.shape[1], n_classes, **params)
    with torch.no_grad():
        head.weight.copy_(w)
        if hasattr(head, "bias"):
            head.bias.copy_(BIAS[:n_classes])
        if method == "centerloss":
            head.centers.copy_(CENTERS)
    return head


def assert_close64(actual, expected, tol=1e-5):
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol, atol=tol)


# --------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("method", METHODS)
def test_loss_and_logits_match_formula(method):
    head = make_head(method).eval()
    assert_close64(head.loss(X, Y, reduction="none"), ref_loss(method, X, Y))
    assert_close64(head.loss(X, Y), ref_loss(method, X, Y).mean())
    assert_close64(head.logits(X), ref_logits(method, X))
    assert head.logits(X).shape == (4, 3)


@pytest.mark.parametrize("params", [{"scale": 10.0, "margin": 0.2}, {"scale": 64, "margin": 1.2}])
@pytest.mark.parametrize("method", ["arcface", "cosface"])
def test_margin_params_match_formula(method, params):
    head = make_head(method, **params).eval()
    assert_close64(head.loss(X, Y, "none"), ref_loss(method, X, Y, **params))


@pytest.mark.parametrize("iteration", [0, 1, 10, 500, 100000])
@pytest.mark.parametrize(
    "params", [{}, {"base": 0.0, "lambda_min": 0.0}, {"margin": 2}, {"margin": 3, "base": 0.0, "lambda_min": 0.0}]
)
def test_sphereface_matches_formula(params, iteration):
    head = make_head("sphereface", **params).eval()
    head.iteration.fill_(iteration)
    expected = ref_loss("sphereface", X, Y, iteration=iteration, **params)
    assert_close64(head.loss(X, Y, "none"), expected)


def test_l2softmax_normalises_each_sample_not_the_batch():
    head = make_head("l2softmax").eval()
    scaled = X * torch.tensor([[1.0], [10.0], [0.01], [3.0]])  # per-sample rescaling
    assert_close64(head.loss(scaled, Y, "none"), head.loss(X, Y, "none"))
    assert_close64(head.logits(scaled), head.logits(X))


@pytest.mark.parametrize("method", METHODS)
def test_bfloat16_embeddings(method):
    """bf16 embeddings (8-bit mantissa, ~4e-3 relative rounding) give float32
    losses within rtol = atol = 2e-2 of the float32 reference; gradients flow
    back in bf16."""
    head = make_head(method).eval()
    emb = X.bfloat16().requires_grad_()
    loss = head.loss(emb, Y, "none")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref_loss(method, X, Y), rtol=2e-2, atol=2e-2)
    loss.mean().backward()
    assert emb.grad.dtype == torch.bfloat16 and torch.isfinite(emb.grad.float()).all()


@pytest.mark.parametrize("method", METHODS)
def test_autocast_does_not_lower_precision(method):
    head = make_head(method).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits = head.loss(X, Y, "none"), head.logits(X)
    assert loss.dtype == logits.dtype == torch.float32
    assert_close64(loss, ref_loss(method, X, Y))
    assert_close64(logits, ref_logits(method, X))


# --------------------------------------------------------------------------- pml agreement
def pml_pair(method, seed):
    from pytorch_metric_learning.losses import ArcFaceLoss, CosFaceLoss

    g = torch.Generator().manual_seed(seed)
    n, d, c = 12, 6, 5
    head = build_head(method, d, c).eval()
    if method == "arcface":
        # pml's ArcFaceLoss takes its margin in DEGREES
        ref = ArcFaceLoss(num_classes=c, embedding_size=d, margin=math.degrees(0.5), scale=30.0)
    else:
        ref = CosFaceLoss(num_classes=c, embedding_size=d, margin=0.4, scale=30.0)
    w = torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    x = torch.randn(n, d, generator=g)
    x[:3] = -w[y[:3]] + 0.05 * torch.randn(3, d, generator=g)  # θ near π: fallback branch
    with torch.no_grad():
        head.weight.copy_(w)
        ref.W.copy_(w.T)  # pml's weight layout is [D, C]
    return head, ref, x, y


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["arcface", "cosface"]))
def test_agrees_with_pytorch_metric_learning(seed, method):
    head, ref, x, y = pml_pair(method, seed)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = head.loss(x1, y), ref(x2, y)  # pml's default reducer: mean over samples
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(head.weight.grad, ref.W.grad.T, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- margins
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_sphereface_psi_monotonic_and_cos_m_theta(m):
    head = build_head("sphereface", 3, 3, margin=m)
    theta = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    psi = head.psi(torch.cos(theta))
    assert (psi.diff() < 0).all()
    first = theta <= math.pi / m
    torch.testing.assert_close(psi[first], torch.cos(m * theta[first]), rtol=0, atol=1e-10)
    # float32 path agrees too
    psi32 = head.psi(torch.cos(theta).float())
    torch.testing.assert_close(psi32.double(), psi, rtol=0, atol=1e-4)
    # ψ(π) = −(2m − 1)
    assert psi[-1].item() == pytest.approx(1 - 2 * m, abs=1e-9)


def test_arcface_fallback_branch_when_theta_plus_m_exceeds_pi():
    s, m = 30.0, 0.5
    head = make_head("arcface", w=torch.eye(3)).eval()
    x = torch.tensor(
        [
            [-1.0, 0.05, 0.0],  # cos ≈ −0.9988 < cos(π − m) ≈ −0.8776
            [-0.5, 0.6, 0.0],  # cos ≈ −0.64   > cos(π − m): cos(θ + m)
            [0.3, -2.0, 0.4],  # cos ≈ −0.97 to class 1
            [0.0, 0.0, -1.0],
        ]
    )  # θ = π exactly
    y = torch.tensor([0, 0, 1, 2])
    cos = unit(x.double())  # W = I, so cos θ_j = x_j / ‖x‖
    cos_t = cos[torch.arange(4), y]
    below = cos_t <= math.cos(math.pi - m)
    assert below.tolist() == [True, False, True, True]
    expected = torch.where(below, s * (cos_t - math.sin(math.pi - m) * m), s * torch.cos(torch.arccos(cos_t) + m))
    logits = head.margin_logits(x, y)
    assert_close64(logits[torch.arange(4), y], expected)
    others = torch.ones(4, 3, dtype=torch.bool)
    others[torch.arange(4), y] = False
    assert_close64(logits[others], s * cos[others])


def test_cosface_target_logit():
    head = make_head("cosface", w=torch.eye(3)).eval()
    cos = unit(X.double())
    expected = 30.0 * (cos[torch.arange(4), Y] - 0.4)
    assert_close64(head.margin_logits(X, Y)[torch.arange(4), Y], expected)


# --------------------------------------------------------------------------- gradients
def degenerate_batch(head):
    w = head.weight.detach()
    return torch.stack([torch.zeros(3), w[0], -w[1], 3 * w[2], -w[0] / 7]), torch.tensor([1, 0, 1, 2, 0])


@pytest.mark.parametrize("method", METHODS)
def test_gradients_finite_at_norm_zero_and_theta_0_and_pi(method):
    head = make_head(method).train()
    x, y = degenerate_batch(head)
    x.requires_grad_()
    loss = head.loss(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if method == "centerloss":
        assert torch.isfinite(head.centers).all()


@pytest.mark.parametrize("method", ["arcface", "cosface", "sphereface"])
def test_gradients_finite_exactly_parallel_in_float32(method):
    """θ exactly 0 / π to float32 precision (unit weights along the axes)."""
    head = make_head(method, w=torch.eye(3)).train()
    x = torch.tensor([[2.0, 0, 0], [0, -1.0, 0], [0, 0, 5.0], [0, 0, 0]], requires_grad=True)
    head.loss(x, torch.tensor([0, 1, 2, 1])).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()


# --------------------------------------------------------------------------- state
def test_sphereface_lambda_schedule_counts_training_steps_only():
    head = make_head("sphereface")
    p = PARAMS["sphereface"]

    def formula(it):
        return max(p["lambda_min"], p["base"] * (1 + p["gamma"] * it) ** (-p["power"]))

    assert int(head.iteration) == 0 and float(head.current_lambda()) == pytest.approx(formula(0))
    head.train()
    for step in range(1, 4):
        head.loss(X, Y)
        assert int(head.iteration) == step
        assert float(head.current_lambda()) == pytest.approx(formula(step))
    head.eval()
    with torch.no_grad():
        head.loss(X, Y)
    head.loss(X, Y)
    head.logits(X)
    assert int(head.iteration) == 3
    head.train()
    head.loss(X, Y, update=False)
    head.margin_logits(X, Y)
    assert int(head.iteration) == 3
    head.mixup_loss(X, Y, Y.flip(0), 0.7)  # one MixUp step = one step
    assert int(head.iteration) == 4
    for it in [0, 1, 7, 100, 1658, 1659, 10**6]:
        head.iteration.fill_(it)
        assert float(head.current_lambda()) == pytest.approx(formula(it))
    assert float(head.current_lambda()) == p["lambda_min"]
    # the training step's loss uses λ after the increment (reference code)
    head.iteration.fill_(9)
    loss = head.loss(X, Y, "none")
    assert_close64(loss, ref_loss("sphereface", X, Y, iteration=10))
    state = head.state_dict()
    assert int(state["iteration"]) == 10


def test_sphereface_run_schedule_reaches_lambda_min_at_its_fraction_of_the_run():
    """λ_t = max(λ_min, base (1 + c t / (f T))^-power), c = (base / λ_min)^(1/power) - 1, worked
    out by hand for base 1000, λ_min 5, power 1 (c = 199), f = 0.5, T = 40: λ_min from step 20 on."""
    head = build_head("sphereface", 3, 3, anneal_fraction=0.5)
    head.set_run_length(40)
    for t, expected in [
        (0, 1000.0),
        (1, 1000 / (1 + 199 / 20)),
        (10, 1000 / (1 + 199 / 2)),
        (19, 1000 / (1 + 199 * 19 / 20)),
        (20, 5.0),
        (21, 5.0),
        (40, 5.0),
    ]:
        head.iteration.fill_(t)
        assert float(head.current_lambda()) == pytest.approx(expected, rel=1e-6), t
    head.iteration.fill_(20)
    assert float(head.current_lambda()) == 5.0  # exactly, not a rounding hair above
    # power 2: c = sqrt(200) - 1; halfway through the annealing
    head = build_head("sphereface", 3, 3, power=2.0, anneal_fraction=1.0)
    head.set_run_length(100)
    head.iteration.fill_(50)
    assert float(head.current_lambda()) == pytest.approx(1000 * (1 + (200**0.5 - 1) * 0.5) ** -2, rel=1e-6)
    # the reference schedule ignores the run's length
    ref = build_head("sphereface", 3, 3, lambda_schedule="reference")
    ref.set_run_length(40)
    ref.iteration.fill_(40)
    assert float(ref.current_lambda()) == pytest.approx(1000 / (1 + 0.12 * 40), rel=1e-6)


def test_sphereface_run_schedule_needs_a_positive_lambda_min():
    with pytest.raises(ConfigError, match="parameter 'lambda_min' must be > 0 with lambda_schedule 'run'"):
        build_head("sphereface", 3, 3, lambda_min=0.0)
    build_head("sphereface", 3, 3, lambda_min=0.0, lambda_schedule="reference")
    build_head("sphereface", 3, 3, lambda_min=0.0, base=0.0)  # nothing to anneal: λ = 0 throughout
    with pytest.raises(ConfigError, match="'lambda_schedule' must be one of run, reference"):
        build_head("sphereface", 3, 3, lambda_schedule="linear")


def test_centerloss_update_follows_paper_rule():
    alpha = 0.5
    head = make_head("centerloss", alpha=alpha).train()
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [2.0, 0.5, -1.0], [-1.0, 1.0, 1.0], [0.5, 0.5, 0.5]])
    y = torch.tensor([0, 2, 0, 0, 2])  # class 1 absent
    old = CENTERS.clone()
    expected = old.clone()
    for j in range(3):  # Δc_j = Σ_{i: y_i = j}(c_j − x_i) / (1 + n_j), c_j ← c_j − α Δc_j
        members = [i for i in range(len(y)) if y[i] == j]
        delta = sum((old[j] - x[i] for i in members), torch.zeros(3)) / (1 + len(members))
        expected[j] = old[j] - alpha * delta
    loss = head.loss(x, y, "none")
    # the loss used the centres from before the update
    assert_close64(loss, ref_loss("centerloss", x, y, centers=old))
    torch.testing.assert_close(head.centers, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(head.centers[1], old[1])


def test_centerloss_centres_are_a_buffer_and_frozen_in_eval():
    head = make_head("centerloss")
    assert "centers" not in dict(head.named_parameters())
    assert "centers" in head.state_dict()
    assert torch.count_nonzero(build_head("centerloss", 3, 3).centers) == 0  # zero init
    head.eval()
    before = head.centers.clone()
    head.loss(X, Y)
    head.loss(X, Y, "none")
    assert torch.equal(head.centers, before)
    head.train()
    head.loss(X, Y, update=False)
    assert torch.equal(head.centers, before)
    head.loss(X, Y)
    assert not torch.equal(head.centers, before)


# --------------------------------------------------------------------------- reductions
@pytest.mark.parametrize("method", METHODS)
def test_reduction_none_mean_sum(method):
    head = make_head(method).train()
    per = head.loss(X, Y, "none", update=False)
    assert per.shape == (4,)
    torch.testing.assert_close(per.mean(), head.loss(X, Y, "mean", update=False))
    torch.testing.assert_close(per.sum(), head.loss(X, Y, "sum", update=False))
    with pytest.raises(ValueError):
        head.loss(X, Y, "average")


@pytest.mark.parametrize("method", METHODS)
def test_mixup_loss_combines_the_methods_own_loss(method):
    head = make_head(method).eval()
    y2 = torch.tensor([1, 1, 0, 2])
    lam = torch.tensor([0.9, 0.6, 0.5, 0.75])
    expected = lam * head.loss(X, Y, "none") + (1 - lam) * head.loss(X, y2, "none")
    torch.testing.assert_close(head.mixup_loss(X, Y, y2, lam, "none"), expected)
    torch.testing.assert_close(
        head.mixup_loss(X, Y, y2, 0.7), (0.7 * head.loss(X, Y, "none") + 0.3 * head.loss(X, y2, "none")).mean()
    )


# --------------------------------------------------------------------------- registry
def test_registry_and_defaults():
    assert set(HEADS) == set(PARAMS) == {"conventional", "l2softmax", "arcface", "cosface", "sphereface", "centerloss"}
    assert PARAMS["arcface"] == {"scale": 30.0, "margin": 0.5}
    assert PARAMS["cosface"] == {"scale": 30.0, "margin": 0.4}
    assert PARAMS["l2softmax"] == {"alpha": 16.0}
    assert PARAMS["centerloss"] == {"weight": 0.003, "alpha": 0.5}
    assert PARAMS["sphereface"] == {
        "margin": 4,
        "base": 1000.0,
        "gamma": 0.12,
        "power": 1.0,
        "lambda_min": 5.0,
        "lambda_schedule": "run",
        "anneal_fraction": 0.06,
    }
    for name in HEADS:
        head = build_head(name, 8, 4, **PARAMS[name])
        assert head.hparams == PARAMS[name]
        assert head.logits(torch.randn(2, 8)).shape == (2, 4)


@pytest.mark.parametrize("method", ["arcface", "cosface", "sphereface"])
def test_cosine_heads_are_bias_free(method):
    assert set(dict(build_head(method, 3, 3).named_parameters())) == {"weight"}


def test_unknown_method_lists_known():
    with pytest.raises(ConfigError) as err:
        build_head("magface", 3, 3)
    msg = str(err.value)
    assert "magface" in msg and all(name in msg for name in HEADS)


def test_unknown_parameter_names_it_and_the_allowed():
    with pytest.raises(ConfigError) as err:
        build_head("arcface", 3, 3, scale=30, s=64)
    msg = str(err.value)
    assert "'s'" in msg and "scale" in msg and "margin" in msg
    with pytest.raises(ConfigError, match="'alpha'.*none"):
        build_head("conventional", 3, 3, alpha=1)


@pytest.mark.parametrize(
    "method,params",
    [
        ("arcface", {"scale": 0}),
        ("arcface", {"margin": -0.1}),
        ("arcface", {"margin": 4.0}),
        ("cosface", {"margin": float("nan")}),
        ("l2softmax", {"alpha": "16"}),
        ("l2softmax", {"alpha": True}),
        ("sphereface", {"margin": 2.5}),
        ("sphereface", {"margin": 0}),
        ("sphereface", {"gamma": -1}),
        ("centerloss", {"alpha": 1.5}),
        ("centerloss", {"weight": -0.1}),
    ],
)
def test_bad_parameter_values(method, params):
    with pytest.raises(ConfigError, match=repr(next(iter(params)))):
        build_head(method, 3, 3, **params)


@pytest.mark.parametrize("in_features,n_classes", [(0, 3), (3, 0), (3.5, 3), (3, True)])
def test_bad_shapes(in_features, n_classes):
    with pytest.raises(ConfigError):
        build_head("conventional", in_features, n_classes)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("method", METHODS)
def test_one_sgd_step_changes_every_trainable_parameter(method):
    torch.manual_seed(0)
    head = build_head(method, 5, 4).train()
    x = torch.randn(12, 5)
    y = torch.arange(12) % 4
    before = {n: p.detach().clone() for n, p in head.named_parameters()}
    centres = head.centers.clone() if method == "centerloss" else None
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    opt.zero_grad()
    head.loss(x, y).backward()
    opt.step()
    trainable = [n for n, p in head.named_parameters() if p.requires_grad]
    assert "weight" in trainable
    for name in trainable:
        p = dict(head.named_parameters())[name].detach()
        changed = (p != before[name]).reshape(p.shape[0], -1).any(dim=1)
        assert changed.all(), f"{method}.{name}: rows unchanged {(~changed).nonzero().flatten().tolist()}"
    if method == "centerloss":
        assert (head.centers != centres).any(dim=1).all()
