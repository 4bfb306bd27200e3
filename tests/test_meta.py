"""Chapter 7: MAML against finite differences and the closed form, vmap against the loop, Reptile,
ProtoNets, the episode sampler and the Omniglot loaders."""
import math

import pytest
import torch
import torch.nn.functional as F

from tlcourse import episodes, meta
from tlcourse.chapters import ch07_meta


def _tiny(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return meta.regressor(hidden=3).to(dtype)


def _batch(tasks=3, k=4, query=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(t.to(dtype) for t in meta.Sinusoids().episodes(tasks, k, query, g))


def _query_loss_after_adaptation(model, params, batch, lr, steps):
    xs, ys, xq, yq = batch
    losses = [meta.task_loss(model, meta.adapt(model, params, a, b, lr, steps), c, d) for a, b, c, d in zip(xs, ys, xq, yq)]
    return torch.stack(losses).mean()


def test_maml_meta_gradient_matches_finite_differences():
    model, batch = _tiny(), _batch()
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    grads, value = meta.meta_gradient(model, params, batch, lr=0.1, steps=2, method="maml")
    assert value == pytest.approx(_query_loss_after_adaptation(model, params, batch, 0.1, 2).item(), rel=1e-10)
    eps = 1e-6
    for name, p in params.items():
        for i in range(p.numel()):
            plus = {k: v.clone() for k, v in params.items()}
            minus = {k: v.clone() for k, v in params.items()}
            plus[name].view(-1)[i] += eps
            minus[name].view(-1)[i] -= eps
            numeric = (_query_loss_after_adaptation(model, plus, batch, 0.1, 2)
                       - _query_loss_after_adaptation(model, minus, batch, 0.1, 2)) / (2 * eps)
            assert grads[name].view(-1)[i].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8), (name, i)


def test_first_order_maml_drops_exactly_the_hessian_term():
    """Linear regression, one inner step: MAML's meta-gradient is (I - a H_support) g_query(w'),
    first-order MAML's is g_query(w'), with w' = w - a g_support(w) and H = 2 X^T X / n."""
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1, bias=False).double()
    xs, ys, xq, yq = (torch.randn(1, n, d, dtype=torch.float64) for n, d in [(6, 3), (6, 1), (8, 3), (8, 1)])
    alpha = 0.2
    w = model.weight.detach().clone().view(-1)
    grad_of = lambda x, y, v: 2 * x.T @ (x @ v - y.view(-1)) / len(x)  # noqa: E731
    adapted = w - alpha * grad_of(xs[0], ys[0], w)
    g_query = grad_of(xq[0], yq[0], adapted)
    hessian = 2 * xs[0].T @ xs[0] / len(xs[0])
    params = meta.params_of(model)
    second, _ = meta.meta_gradient(model, params, (xs, ys, xq, yq), alpha, 1, "maml")
    first, _ = meta.meta_gradient(model, params, (xs, ys, xq, yq), alpha, 1, "fomaml")
    torch.testing.assert_close(second["weight"].view(-1), (torch.eye(3, dtype=torch.float64) - alpha * hessian) @ g_query)
    torch.testing.assert_close(first["weight"].view(-1), g_query)
    assert (second["weight"] - first["weight"]).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["maml", "fomaml"])
def test_vmap_meta_gradient_equals_the_loop(method):
    model, batch = meta.regressor(), _batch(tasks=25, k=10, query=10, dtype=torch.float32)
    params = meta.params_of(model)
    fast, v1 = meta.meta_gradient(model, params, batch, 0.01, 2, method)
    slow, v2 = meta.meta_gradient_loop(model, params, batch, 0.01, 2, method)
    assert set(fast) == set(slow) and torch.allclose(v1, v2, atol=1e-6)
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k], atol=1e-6, rtol=1e-5)


def test_reptile_direction_is_mean_adapted_minus_initial():
    model, (xs, ys, _, _) = _tiny(), _batch(tasks=4)
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    direction, _ = meta.reptile_direction(model, params, xs, ys, lr=0.05, steps=3)
    expected = {k: torch.zeros_like(v) for k, v in params.items()}
    for x, y in zip(xs, ys):
        copy = _tiny()
        opt = torch.optim.SGD(copy.parameters(), lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(copy(x), y).backward()
            opt.step()
        for k, v in copy.named_parameters():
            expected[k] += (v.detach() - params[k]) / len(xs)
    for k in params:
        torch.testing.assert_close(direction[k], expected[k])


def test_meta_training_makes_one_step_adaptation_work():
    torch.manual_seed(0)
    model = meta.regressor()
    test = meta.Sinusoids().episodes(50, 10, 50, torch.Generator().manual_seed(5))
    before = meta.adaptation_curve(model, test, 0.01, 1)
    history = meta.meta_train(model, ch07_meta.sinusoid_stream(10, 25, 1), method="maml", iterations=1000,
                              inner_lr=0.01, progress=False)
    after = meta.adaptation_curve(model, test, 0.01, 1)
    assert len(history.loss) == 1000 and after[1] < 0.5 * before[1], (before, after)
    assert after[0] - after[1] > 3 * (before[0] - before[1]), (before, after)   # adapting became the point


def test_adaptation_curve_starts_at_the_unadapted_loss():
    model, batch = meta.regressor(), _batch(dtype=torch.float32)
    curve = meta.adaptation_curve(model, batch, 0.01, 3)
    with torch.no_grad():
        plain = torch.stack([F.mse_loss(model(x), y) for x, y in zip(batch[2], batch[3])]).mean()
    assert len(curve) == 4 and curve[0] == pytest.approx(plain.item(), rel=1e-5)


def test_sinusoid_tasks_follow_the_paper():
    g = torch.Generator().manual_seed(0)
    family = meta.Sinusoids()
    amp, phase = family.tasks(2000, g)
    assert 0.1 <= amp.min() and amp.max() <= 5 and 0 <= phase.min() and phase.max() <= math.pi
    assert amp.mean().item() == pytest.approx(2.55, abs=0.1)
    x, y = family.points(amp[:3], phase[:3], 7, g)
    assert x.shape == (3, 7, 1) and -5 <= x.min() and x.max() <= 5
    torch.testing.assert_close(y, amp[:3, None, None] * torch.sin(x - phase[:3, None, None]))
    grid = torch.linspace(-5, 5, 11)
    monte_carlo = (amp[:, None] * torch.sin(grid[None] - phase[:, None])).mean(0)   # E[y | x] over 2,000 tasks
    torch.testing.assert_close(family.mean_function(grid), monte_carlo, atol=0.12, rtol=0)
    torch.testing.assert_close(family.mean_function(grid), -2 * 2.55 / math.pi * torch.cos(grid))
    with pytest.raises(ValueError, match="k >= 1"):
        family.episodes(2, 0, 3, g)


def test_bad_arguments_get_clear_errors():
    model = meta.regressor()
    batch = _batch(dtype=torch.float32)
    with pytest.raises(ValueError, match="unknown method 'anil'"):
        meta.meta_gradient(model, meta.params_of(model), batch, 0.01, 1, "anil")
    with pytest.raises(ValueError, match="the methods are maml, fomaml, reptile"):
        meta.meta_train(model, iter([]), method="maml2", iterations=1, inner_lr=0.1)
    with pytest.raises(ValueError, match="same number of tasks"):
        meta.meta_gradient(model, meta.params_of(model), (batch[0], batch[1], batch[2][:1], batch[3][:1]), 0.01)


def test_prototypes_are_class_means_and_logits_negative_squared_distances():
    g = torch.Generator().manual_seed(0)
    support, labels, query = torch.randn(6, 4, generator=g), torch.tensor([2, 0, 1, 0, 2, 1]), torch.randn(5, 4, generator=g)
    protos = meta.prototypes(support, labels, 3)
    for c in range(3):
        torch.testing.assert_close(protos[c], support[labels == c].mean(0))
    logits = meta.proto_logits(query, protos)
    expected = torch.tensor([[-float(((q - p) ** 2).sum()) for p in protos] for q in query])
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"classes \[3\] have no support"):
        meta.prototypes(support, labels, 4)


def _pool(classes=12, per_class=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)[torch.randperm(classes * per_class, generator=g)]
    images = labels.float()[:, None, None, None].expand(-1, 1, 2, 2).clone()   # each image "shows" its class
    return images, labels


def test_episodes_are_disjoint_n_way_k_shot():
    images, labels = _pool()
    source = episodes.Episodes(images, labels, n_way=5, k_shot=2, n_query=3)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        support, query = source.sample_indices(g)
        assert len(support) == 10 and len(query) == 15 and not set(support.tolist()) & set(query.tolist())
        s_cls, q_cls = labels[support].view(5, 2), labels[query].view(5, 3)
        assert (s_cls == s_cls[:, :1]).all() and (q_cls == s_cls[:, :1]).all()
        assert len(set(s_cls[:, 0].tolist())) == 5
    xs, ys, xq, yq = source.sample(torch.Generator().manual_seed(3))
    again = source.sample(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip((xs, ys, xq, yq), again))
    assert ys.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len({int(xs[i, 0, 0, 0]) for i in range(10)}) == 5          # relabelled: episode label 0 is some class
    stacked = source.batch(4, g)
    assert [tuple(t.shape) for t in stacked] == [(4, 10, 1, 2, 2), (4, 10), (4, 15, 1, 2, 2), (4, 15)]


def test_episode_sampler_rejects_impossible_requests():
    images, labels = _pool(classes=4, per_class=5)
    with pytest.raises(ValueError, match="5-way episodes need 5 classes, the pool has 4"):
        episodes.Episodes(images, labels, 5, 1, 1)
    with pytest.raises(ValueError, match="some classes have only 5"):
        episodes.Episodes(images, labels, 3, 3, 3)


def test_rotations_make_four_classes_per_character():
    images = torch.arange(2 * 9, dtype=torch.float32).view(2, 1, 3, 3)
    rotated, labels = episodes.with_rotations(images, torch.tensor([0, 1]))
    assert rotated.shape == (8, 1, 3, 3) and sorted(labels.tolist()) == list(range(8))
    turned = rotated[labels.tolist().index(1)]                       # class 0 rotated once
    torch.testing.assert_close(turned, torch.rot90(images[0], 1, dims=(-2, -1)))


def test_omniglot_images_and_one_shot_runs():
    images, labels = episodes.omniglot_images("background_small1")
    assert images.shape == (2720, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert labels.unique().numel() == 136 and 0.02 < images.mean() < 0.2          # mostly paper, some ink
    runs = episodes.one_shot_runs()
    assert len(runs) == 20
    for xs, ys, xq, yq in runs:
        assert xs.shape == xq.shape == (20, 1, 28, 28)
        assert ys.tolist() == list(range(20)) and sorted(yq.tolist()) == list(range(20))


def test_predict_rejects_unknown_learners_and_wrong_ways():
    cfg = ch07_meta.OmniglotConfig()
    x = torch.zeros(5, 1, 28, 28)
    y = torch.arange(5)
    with pytest.raises(ValueError, match="unknown learner 'MatchingNet'"):
        episodes.predict("MatchingNet", meta.conv4(8), x, y, x, 5, cfg)
    with pytest.raises(ValueError, match="classifies 5 ways, not 20"):
        episodes.predict("first-order MAML", meta.conv4(8, 5), x, y, x, 20, cfg)
    assert episodes.predict("ProtoNet", meta.conv4(8), x, y, x, 5, cfg).shape == (5,)


def test_proto_loss_is_the_cross_entropy_of_the_prototype_logits():
    g = torch.Generator().manual_seed(0)
    xs, xq = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g)
    ys, yq = torch.arange(3).repeat_interleave(2), torch.arange(3).repeat_interleave(3)
    protos = torch.stack([xs[ys == k].mean(0) for k in range(3)])
    expected = F.cross_entropy(-torch.cdist(xq, protos).pow(2), yq)
    assert episodes.proto_loss(torch.nn.Identity(), (xs, ys, xq, yq), 3).item() == pytest.approx(expected.item(), rel=1e-5)


def test_few_shot_table_scores_every_learner_on_the_same_episodes():
    import dataclasses

    from tlcourse.chapters import ch07_meta as ch
    from tlcourse.episodes import Episodes

    g = torch.Generator().manual_seed(0)
    centres = 4.0 * torch.randn(6, 5, generator=g)  # 6 classes, well apart
    labels = torch.arange(6).repeat_interleave(12)
    features = centres[labels] + 0.3 * torch.randn(len(labels), 5, generator=g)
    noise = torch.randn(len(labels), 5, generator=g)  # the same pool with the signal removed
    cfg = dataclasses.replace(ch.CONFIGS["cpu"].omniglot, test_episodes=40)
    table = ch.few_shot_table({"ProtoNet": torch.nn.Identity()},
                              {"clusters": Episodes(features, labels, 5, 1, 3), "noise": Episodes(noise, labels, 5, 1, 3)},
                              cfg, progress=False)
    assert list(table.columns) == ["episodes", "learner", "accuracy", "ci95"] and len(table) == 2
    by = table.set_index("episodes")
    assert by.loc["clusters", "accuracy"] > 0.95 and abs(by.loc["noise", "accuracy"] - 0.2) < 0.1
    assert by.loc["noise", "ci95"] > 0 and (table.ci95 < 0.2).all()  # every episode right: no spread
    again = ch.few_shot_table({"ProtoNet": torch.nn.Identity()}, {"clusters": Episodes(features, labels, 5, 1, 3)},
                              cfg, progress=False)
    assert again.accuracy.iloc[0] == by.loc["clusters", "accuracy"]  # the same seed, the same episodes


def test_pretrain_jointly_fits_the_pooled_points_of_all_tasks():
    # every task is the same line y = 2x + 1: the pooled fit must find it
    def stream():
        g = torch.Generator().manual_seed(0)
        while True:
            xs, xq = torch.rand(8, 5, 1, generator=g), torch.rand(8, 5, 1, generator=g)
            yield xs, 2 * xs + 1, xq, 2 * xq + 1

    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    history = ch07_meta.pretrain_jointly(net, stream(), iterations=300, lr=0.05, progress=False)
    assert len(history.loss) == 300 and history.loss[-1] < 1e-3 < history.loss[0]
    assert abs(net.weight.item() - 2) < 0.05 and abs(net.bias.item() - 1) < 0.05
