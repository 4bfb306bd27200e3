"""tlcourse.strategies (chapter 9): blocks, ULMFiT's discriminative rates, slanted triangular
schedule (against its closed form and against OneCycleLR) and gradual unfreezing; surgical
fine-tuning; re-initialising top layers (against BERT's initialiser, on a model loaded with
from_pretrained); L2-SP against its analytic gradient; LP-FT's linear probe against scikit-learn."""

import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel

from tlcourse import strategies as st
from tlcourse.features import mean_pool
from tlcourse.finetune import MeanPoolClassifier

CFG = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=2)
CFG.intermediate_size = 64
NAMES = ["embeddings", "layer 0", "layer 1", "layer 2", "head"]


def tiny_bert(seed=0):
    torch.manual_seed(seed)
    return BertForSequenceClassification(CFG)


def mean_pooled(num_labels=2):
    return MeanPoolClassifier(BertModel(CFG, add_pooling_layer=False), num_labels)


def tiny_batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (n, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[n // 2 :, 7:] = 0  # half the rows padded
    labels = torch.randint(0, 2, (n,), generator=g)
    types = torch.zeros_like(ids)
    return dict(input_ids=ids * mask, attention_mask=mask, token_type_ids=types, labels=labels)


def test_blocks_partition_both_model_kinds():
    model = tiny_bert()
    parts = st.blocks(model)
    assert [n for n, _ in parts] == NAMES
    seen = [n for _, ps in parts for n, _ in ps]
    assert sorted(seen) == sorted(n for n, _ in model.named_parameters())
    assert len(set(seen)) == len(seen)
    for i in range(3):
        assert all(n.startswith(f"bert.encoder.layer.{i}.") for n, _ in parts[i + 1][1])
    head = {n for n, _ in parts[-1][1]}
    modules = ("bert.pooler.dense", "classifier")
    assert head == {f"{m}.{w}" for m in modules for w in ("weight", "bias")}
    parts = dict(st.blocks(mean_pooled(3)))
    assert list(parts) == NAMES
    assert [n for n, _ in parts["head"]] == ["classifier.weight", "classifier.bias"]
    assert all(n.startswith("encoder.encoder.layer.2.") for n, _ in parts["layer 2"])
    # a bare encoder without pooler has no head block
    assert st.block_names(BertModel(CFG, add_pooling_layer=False)) == NAMES[:-1]
    with pytest.raises(ValueError, match="embeddings"):
        st.blocks(torch.nn.Linear(2, 2))


def test_discriminative_rates_follow_ulmfit_eq_2():
    # float64, so that the SGD step below can be checked to 1e-9, not to float32's rounding
    model = tiny_bert().double()
    groups = st.discriminative_groups(model, lr=1e-3, decay=2.6, head_lr=5e-3)
    want = [1e-3 / 2.6**3, 1e-3 / 2.6**2, 1e-3 / 2.6, 1e-3, 5e-3]
    assert [g["name"] for g in groups] == NAMES
    assert [g["lr"] for g in groups] == pytest.approx(want, rel=1e-12)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert {g["lr"] for g in st.discriminative_groups(model, lr=2e-4, decay=1)} == {2e-4}
    # end to end: one plain SGD step moves each block by exactly -eta^l * grad (eq. 2)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    opt = torch.optim.SGD(groups, lr=0.0)
    model(**tiny_batch()).loss.backward()
    grads = {id(p): p.grad.clone() for p in model.parameters()}
    opt.step()
    for g in groups:
        for p in g["params"]:
            step = p.detach() - before[id(p)]
            torch.testing.assert_close(step, -g["lr"] * grads[id(p)], rtol=1e-9, atol=1e-15)


def test_slanted_triangular_closed_form_at_hand_computed_points():
    # T = 100, cut_frac = 0.1, ratio = 32: cut = 10, then a decay over cut (1/cut_frac - 1) = 90
    def f(t):
        return st.slanted_triangular(t, 100)

    assert f(0) == pytest.approx(1 / 32)
    assert f(5) == pytest.approx(16.5 / 32)  # p = 1/2 on the way up
    assert f(10) == pytest.approx(1.0)  # the peak, at t = cut
    assert f(55) == pytest.approx(16.5 / 32)  # p = 1 - 45/90 = 1/2 on the way down
    assert f(99) == pytest.approx(121 / 2880)  # p = 1/90: (1 + 31/90) / 32
    assert f(100) == pytest.approx(1 / 32)  # eta_max / ratio one step past the end
    assert st.slanted_triangular(3, 40, cut_frac=0.25, ratio=8) == pytest.approx(3.1 / 8)
    # T cut_frac < 1: cut is 1 instead of a division by zero
    assert st.slanted_triangular(0, 5) == pytest.approx(1 / 32)
    with pytest.raises(ValueError, match="cut_frac"):
        st.slanted_triangular(0, 100, cut_frac=1.0)


def _lrs(opt, sched, total):
    out = []
    for _ in range(total):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("total,cut_frac,ratio", [(100, 0.1, 32), (1000, 0.1, 32), (80, 0.25, 8)])
def test_stlr_against_onecycle(total, cut_frac, ratio):
    """OneCycleLR (linear, div_factor = ratio, final_div_factor = 1) is eq. 3 one step early: its
    decay is STLR shifted by one step and its rise takes cut - 1 steps; the largest gap, at cut - 1,
    is (1 - 1/ratio) / cut of the peak rate, asserted exactly, not hidden in a tolerance."""
    params = list(tiny_bert().parameters())
    peaks = [3e-4, 1e-3]
    groups = [{"params": params[:5], "lr": peaks[0]}, {"params": params[5:], "lr": peaks[1]}]
    opt = torch.optim.SGD(groups)
    ours = _lrs(opt, st.slanted_triangular_scheduler(opt, total, cut_frac, ratio), total)
    opt = torch.optim.SGD([{"params": params[:5]}, {"params": params[5:]}], lr=0.1)
    # eq. 3's shape: linear both ways, from eta_max / ratio and back down to it
    kw = dict(total_steps=total, pct_start=cut_frac, div_factor=ratio, final_div_factor=1)
    kw.update(anneal_strategy="linear", cycle_momentum=False, three_phase=False)
    theirs = _lrs(opt, torch.optim.lr_scheduler.OneCycleLR(opt, peaks, **kw), total)
    peaks = torch.tensor(peaks, dtype=torch.float64)
    closed = [st.slanted_triangular(t, total, cut_frac, ratio) for t in range(total + 1)]
    closed = torch.tensor(closed, dtype=torch.float64)[:, None].expand(-1, 2)
    # the LambdaLR gives each group eq. 3 times its own peak
    torch.testing.assert_close(ours, closed[:total] * peaks, rtol=1e-12, atol=0)
    ours, theirs = ours / peaks, theirs / peaks  # as multipliers of eta_max
    cut = math.floor(total * cut_frac)
    assert theirs[0].tolist() == pytest.approx([1 / ratio] * 2) == ours[0].tolist()
    assert theirs[cut - 1].tolist() == pytest.approx([1, 1]) == ours[cut].tolist()
    # OneCycle's decay is eq. 3 one step ahead; its rise reaches the peak in cut - 1 steps
    torch.testing.assert_close(theirs[cut - 1 :], closed[cut:], rtol=1e-9, atol=1e-12)
    rise = 1 / ratio + torch.arange(cut, dtype=torch.float64) / (cut - 1) * (1 - 1 / ratio)
    torch.testing.assert_close(theirs[:cut], rise[:, None].expand(-1, 2), rtol=1e-9, atol=1e-12)
    gap = (theirs - ours).abs()
    assert gap.max().item() == pytest.approx((1 - 1 / ratio) / cut, rel=1e-9)
    assert int(gap[:, 0].argmax()) == cut - 1
    # OneCycle ends at eta_max / ratio on the last step; eq. 3 gets there one step later
    assert theirs[-1].tolist() == pytest.approx([1 / ratio] * 2)
    assert ours[-1].tolist() == pytest.approx(closed[total - 1].tolist())
    assert ours[-1, 0] > 1 / ratio + 1e-6


@pytest.mark.parametrize("fused", [False, True])
def test_gradual_unfreezing_leaves_frozen_blocks_bit_identical(fused):
    model = tiny_bert()
    unfreeze = st.GradualUnfreezing(model)
    assert unfreeze.trainable == ["head"] and unfreeze.n_stages == 5
    groups = st.discriminative_groups(model, lr=1e-2)
    opt = torch.optim.AdamW(groups, weight_decay=0.1, fused=fused)
    sched = st.slanted_triangular_scheduler(opt, total=20)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    batch = tiny_batch()

    def steps(k):
        for _ in range(k):
            opt.zero_grad(set_to_none=True)
            model(**batch).loss.backward()
            opt.step()
            sched.step()

    def moved():
        return {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}

    def with_state():
        return {names[id(p)] for p in opt.state}

    parts = dict(st.blocks(model))
    head, top = ({n for n, _ in parts[b]} for b in ("head", "layer 2"))
    steps(3)
    # nothing below the head has moved by a bit, and the optimizer keeps no state for it
    assert moved() == head and with_state() == head
    assert unfreeze.stage(1) == ["layer 2", "head"]
    steps(3)
    assert moved() == head | top and with_state() == head | top
    # frozen again: its stale gradient is dropped, so momentum and weight decay stop moving it
    unfreeze.stage(0)
    assert all(p.grad is None and not p.requires_grad for _, p in parts["layer 2"])
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n in top}
    steps(2)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in top)
    assert unfreeze.stage(99) == NAMES
    assert all(p.requires_grad for p in model.parameters())


def test_tune_only_trains_the_named_blocks():
    model = tiny_bert()
    n = st.tune_only(model, ["layer 0", "head"])
    parts = dict(st.blocks(model))
    assert n == sum(p.numel() for b in ("layer 0", "head") for _, p in parts[b])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {name for b in ("layer 0", "head") for name, _ in parts[b]}
    with pytest.raises(ValueError, match=r"unknown blocks \['layer 7'\].*'layer 2', 'head'"):
        st.tune_only(model, ["layer 7"])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny BERT saved and loaded back with from_pretrained: transformers 5 marks loaded tensors
    as initialised, the case where calling _init_weights alone does nothing. Its weights are
    scaled by 3 first, so they look nothing like a fresh draw."""
    model = tiny_bert(seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3).add_(0.01)
    path = tmp_path_factory.mktemp("tiny") / "bert"
    model.save_pretrained(path)
    return path


def _linear_weights(module):
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    return torch.cat([m.weight.detach().flatten() for m in linears])


def test_reinit_top_layers_draws_from_berts_initialiser(pretrained):
    model = BertForSequenceClassification.from_pretrained(pretrained)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    assert st.reinit_top_layers(model, 2, seed=7) == ["layer 1", "layer 2", "pooler"]
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's random state is untouched
    std = CFG.initializer_range
    fresh = _linear_weights(BertModel(CFG).encoder.layer[0])
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    for layer in model.bert.encoder.layer[1:]:
        w = _linear_weights(layer)  # 8,192 draws: the std to about 1%
        assert abs(w.mean()) < 4 * std / len(w) ** 0.5
        assert abs(w.std() / std - 1) < 0.05 and abs(w.std() / fresh.std() - 1) < 0.05
        want = torch.quantile(fresh, q)
        torch.testing.assert_close(torch.quantile(w, q), want, atol=0.15 * std, rtol=0)
        for m in layer.modules():
            if isinstance(m, torch.nn.Linear):
                assert torch.count_nonzero(m.bias) == 0
            if isinstance(m, torch.nn.LayerNorm):
                assert torch.all(m.weight == 1) and torch.count_nonzero(m.bias) == 0
    assert torch.count_nonzero(model.bert.pooler.dense.bias) == 0
    top = ("bert.encoder.layer.1.", "bert.encoder.layer.2.", "bert.pooler.")
    for n, p in model.named_parameters():  # the rest is bit-identical
        assert (not torch.equal(p, start[n])) == n.startswith(top), n
    again = BertForSequenceClassification.from_pretrained(pretrained)
    st.reinit_top_layers(again, 2, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    other = BertForSequenceClassification.from_pretrained(pretrained)
    st.reinit_top_layers(other, 2, seed=8)
    weight = [m.bert.encoder.layer[2].output.dense.weight for m in (model, other)]
    assert not torch.equal(*weight)


def test_reinit_on_a_mean_pooled_model_without_pooler():
    model = mean_pooled()
    below = model.encoder.encoder.layer[1].attention.self.query.weight
    before = below.detach().clone()
    assert st.reinit_top_layers(model, 1, seed=0) == ["layer 2"]
    assert torch.equal(below, before)
    assert st.reinit_top_layers(model, 0) == []
    with pytest.raises(ValueError, match="k <= L"):
        st.reinit_top_layers(model, 4)


@pytest.mark.parametrize("beta", [0.0, 0.05])
def test_l2sp_gradient_is_analytic(beta):
    model, lam = tiny_bert(), 0.3
    reg = st.L2SP(model, lam=lam, beta=beta)
    body = {n for b, ps in st.blocks(model) if b != "head" for n, _ in ps}
    assert set(reg.start) == body
    if beta == 0:
        assert reg(model).item() == 0.0  # at the start, nothing to pull back
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    penalty = reg.penalty(model)
    penalty.backward()
    named = [(n, p.detach()) for n, p in model.named_parameters()]
    want = lam * sum((p - reg.start[n]).pow(2).sum() for n, p in named if n in body)
    want = want + beta * sum(p.pow(2).sum() for n, p in named if n not in body)
    torch.testing.assert_close(penalty.detach(), want, rtol=1e-5, atol=0)
    for n, p in model.named_parameters():
        if n in body:
            want = 2 * lam * (p.detach() - reg.start[n])
            torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-9)
        elif beta:
            torch.testing.assert_close(p.grad, 2 * beta * p.detach(), rtol=1e-5, atol=1e-9)
        else:
            assert p.grad is None
    # add_gradient puts the same gradient into p.grad without a graph (zero where it was zero)
    autograd = {
        n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()
    }
    for p in model.parameters():
        p.grad = torch.zeros_like(p) if p.grad is not None else None
    reg.add_gradient(model)
    for n, p in model.named_parameters():
        if autograd[n] is None:
            assert p.grad is None
        else:
            torch.testing.assert_close(p.grad, autograd[n], rtol=1e-5, atol=1e-9)


def test_head_features_are_what_the_classifier_sees():
    batch = tiny_batch()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model = tiny_bert().train()  # head_features switches dropout off, then back on
    feats = st.head_features(model, batch, batch=3)
    assert model.training and feats.shape == (8, 32)
    with torch.no_grad():
        pooled = model.eval().bert(**inputs).pooler_output
    torch.testing.assert_close(feats, pooled, atol=1e-5, rtol=1e-5)
    model = mean_pooled().eval()
    with torch.no_grad():
        hidden = model.encoder(**inputs).last_hidden_state
    want = mean_pool(hidden, batch["attention_mask"])
    torch.testing.assert_close(st.head_features(model, batch, batch=5), want, atol=1e-5, rtol=1e-5)


def _head(d, k):
    model = torch.nn.Module()
    model.classifier = torch.nn.Linear(d, k)
    return model


def _blobs(n, d, k, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(k, d, generator=g)
    y = torch.arange(n) % k
    return centres[y] + spread * torch.randn(n, d, generator=g), y


def test_linear_probe_separates_and_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(300, 16, 3, spread=0.3, seed=0)  # separable
    model = _head(16, 3)
    st.linear_probe_head(model, x, y, l2=1e-4)
    with torch.no_grad():
        assert (model.classifier(x).argmax(1) == y).float().mean().item() == 1.0
    x, y = _blobs(400, 8, 3, spread=6.0, seed=1)  # overlapping classes: a real trade-off
    model, l2 = _head(8, 3), 1e-2
    st.linear_probe_head(model, x, y, l2=l2)
    ref = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=10_000)
    ref.fit(x.double().numpy(), y.numpy())
    # the same optimum, up to the float32 the head is stored in
    w, b = model.classifier.weight.detach().double(), model.classifier.bias.detach().double()
    torch.testing.assert_close(w, torch.from_numpy(ref.coef_), atol=1e-5, rtol=0)
    torch.testing.assert_close(b, torch.from_numpy(ref.intercept_), atol=1e-5, rtol=0)
    with torch.no_grad():
        ours = model.classifier(x).argmax(1).numpy()
    assert (ours == ref.predict(x.double().numpy())).mean() >= 0.995
    assert 0.5 < (ours == y.numpy()).mean() < 1.0  # the classes really overlap
    # two classes: scikit-learn fits one vector, w_1 - w_0, whose penalty is twice ours
    x, y = _blobs(400, 8, 2, spread=6.0, seed=2)
    model = _head(8, 2)
    st.linear_probe_head(model, x, y, l2=l2)
    ref = LogisticRegression(C=2 / (l2 * len(y)), tol=1e-10, max_iter=10_000)
    ref.fit(x.double().numpy(), y.numpy())
    w = model.classifier.weight.detach().double()
    torch.testing.assert_close(w[1:] - w[:1], torch.from_numpy(ref.coef_), atol=1e-5, rtol=0)
