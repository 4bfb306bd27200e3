"""Chapter 7's text experiment: the batched logistic-regression head against its optimality
conditions, a per-episode fit and scikit-learn; the episode table on a synthetic pool; the
linear-head self-check against planted mistakes."""
import pytest
import torch
import torch.nn.functional as F

from tlcourse import checks, episodes, meta
from tlcourse.chapters import ch07_meta


def _episodes(n_episodes=3, n_way=3, k=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n_episodes, n_way * k, d, generator=g, dtype=torch.float64), dim=-1)
    y = torch.arange(n_way).repeat_interleave(k).expand(n_episodes, -1)
    return x, y


def test_linear_heads_satisfy_the_optimality_conditions_of_each_episode():
    x, y = _episodes()
    c = 2.0
    w, b = meta.fit_linear_heads(x, y, 3, c)
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    logits = torch.einsum("end,ekd->enk", x, w) + b[:, None]
    objective = c * F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") + 0.5 * w.pow(2).sum()
    gw, gb = torch.autograd.grad(objective, [w, b])
    assert gw.abs().max() < 1e-6 and gb.abs().max() < 1e-6


def test_batched_heads_equal_one_fit_per_episode():
    x, y = _episodes(n_episodes=4, seed=1)
    w, b = meta.fit_linear_heads(x, y, 3, 1.0)
    for e in range(4):
        w1, b1 = meta.fit_linear_heads(x[e:e + 1], y[e:e + 1], 3, 1.0)
        torch.testing.assert_close(w[e], w1[0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(b[e] - b[e].mean(), b1[0] - b1[0].mean(), atol=1e-6, rtol=1e-5)


def test_linear_head_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    x, y = _episodes(n_episodes=1, n_way=4, k=3, d=6, seed=2)
    w, b = meta.fit_linear_heads(x, y, 4, 1.5)
    ref = linear_model.LogisticRegression(C=1.5, tol=1e-10, max_iter=10_000).fit(x[0].numpy(), y[0].numpy())
    torch.testing.assert_close(w[0], torch.as_tensor(ref.coef_), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b[0] - b[0].mean(), torch.as_tensor(ref.intercept_ - ref.intercept_.mean()),
                               atol=1e-5, rtol=1e-4)


def test_text_few_shot_uses_the_same_episodes_for_both_learners():
    g = torch.Generator().manual_seed(3)
    centres = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    labels = torch.arange(4).repeat_interleave(30)
    features = F.normalize(centres[labels] + 0.05 * torch.randn(len(labels), 8, generator=g), dim=-1)
    cfg = ch07_meta.TextConfig(shots=(1, 3), query=5, episodes=20, head_c=(1.0,))
    table = ch07_meta.text_few_shot(features, labels, cfg)
    assert len(table) == 2 * 2 * 20 and set(table.learner) == {"ProtoNet", "logistic regression, C=1"}
    assert (table.accuracy == 1.0).all()   # well-separated clusters: both learners are perfect
    noisy = F.normalize(torch.randn(len(labels), 8, generator=g), dim=-1)   # no class structure
    chance = ch07_meta.text_few_shot(noisy, labels, ch07_meta.TextConfig(shots=(3,), query=5, episodes=200, head_c=(1.0,)))
    assert abs(chance.accuracy.mean() - 0.25) < 0.05


def _head(support, labels, query, n_way, c, *, bias=True, penalise_bias=False, mean=False,
          inverse_c=False, steps=None, logits=False):
    w = torch.zeros(n_way, support.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_way, dtype=torch.float64, requires_grad=bias)
    x = support.double()
    opt = (torch.optim.SGD([w, b] if bias else [w], lr=0.1) if steps else
           torch.optim.LBFGS([w, b] if bias else [w], max_iter=500, tolerance_grad=1e-10,
                             line_search_fn="strong_wolfe"))

    def objective():
        opt.zero_grad()
        ce = F.cross_entropy(x @ w.T + b, labels, reduction="mean" if mean else "sum")
        penalty = 0.5 * (w.pow(2).sum() + (b.pow(2).sum() if penalise_bias else 0))
        value = (ce + c * penalty) if inverse_c else (c * ce + penalty)
        value.backward()
        return value

    for _ in range(steps or 1):
        opt.step(objective)
    out = query.double() @ w.detach().T + b.detach()
    return (out if logits else torch.softmax(out, -1)).to(query.dtype)


PLANTED_HEAD = {
    "no bias": lambda *a: _head(*a, bias=False),
    "bias penalised": lambda *a: _head(*a, penalise_bias=True),
    "mean instead of sum of the losses": lambda *a: _head(*a, mean=True),
    "c multiplies the penalty": lambda *a: _head(*a, inverse_c=True),
    "not converged (20 gradient steps)": lambda *a: _head(*a, steps=20),
    "logits instead of probabilities": lambda *a: _head(*a, logits=True),
    "prototypes instead of a fitted head": lambda s, y, q, n, c: torch.softmax(
        -torch.cdist(q, torch.stack([s[y == k].mean(0) for k in range(n)])) ** 2, -1),
}


def test_linear_head_check_catches_planted_mistakes(capsys):
    assert checks.meta.linear_head(_head)
    assert not checks.meta.linear_head(lambda *a: None)
    caught = {name: not checks.meta.linear_head(fn) for name, fn in PLANTED_HEAD.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out


def test_batched_transfer_heads_take_the_same_steps_as_one_head_per_episode():
    torch.manual_seed(0)
    net = meta.conv4(8, 12)
    cfg = ch07_meta.OmniglotConfig(head_steps=30)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(60, 1, 28, 28, generator=g), torch.arange(6).repeat_interleave(10)
    source = episodes.Episodes(images, labels, 3, 2, 4)
    drawn = [source.sample(g) for _ in range(5)]
    batched = episodes.transfer_accuracies(net, drawn, 3, cfg)
    one_by_one = [(episodes.predict("transfer", net, xs, ys, xq, 3, cfg) == yq).float().mean().item()
                  for xs, ys, xq, yq in drawn]
    assert batched == pytest.approx(one_by_one)
