"""tlcourse.multitask on tiny networks whose answers are known: the soft-sharing penalty against a
hand computation, its closed-form and finite-difference gradients, lambda -> infinity making the
task networks equal, where hard sharing's gradients go, soft sharing with lambda = 0 being
independent single-task training, the uncertainty weights' value and optimum, and the errors."""

import math

import pytest
import torch
from torch import nn

from tlcourse import multitask as mt
from tlcourse.multitask import MultiTaskNet
from tlcourse.train import fit, seeded

IN, HIDDEN = 5, 4


def _body():
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.Tanh())  # no dropout: runs are deterministic


def _net(classes=None, hard=False, seed=0, dtype=torch.float32, **kwargs):
    with seeded(seed):
        net = MultiTaskNet(classes or {"a": 2, "b": 2}, _body, HIDDEN, hard=hard, **kwargs)
    return net.to(dtype)


def _data(tasks=("a", "b"), n=32, seed=0, dtype=torch.float32):
    """Task ``k`` labels a point by the sign of its ``k``-th coordinate (separable, margin 0.3)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, task in enumerate(tasks):
        x = torch.randn(n, IN, generator=g, dtype=dtype)
        x[:, k] += 0.3 * torch.sign(x[:, k])
        out[task] = (x, (x[:, k] > 0).long())
    return out


def _sq(a, b):
    return (a - b).pow(2).sum()


def _distance(net, t, u):
    return math.sqrt(sum(_sq(p, q).item() for p, q in zip(net.network(t), net.network(u))))


# --- the soft-sharing penalty -----------------------------------------------------------------


def test_penalty_equals_a_hand_computation_over_the_parameters_of_equal_shapes():
    net = _net({"a": 2, "b": 2, "c": 3})  # c's head has another shape: only the bodies compare
    body = {t: net.body[t][0] for t in "abc"}
    head = net.heads
    lam = {("a", "b"): 0.5, ("c", "a"): 2.0, ("b", "c"): 3.0}
    by_hand = (
        0.5 * (_sq(body["a"].weight, body["b"].weight) + _sq(body["a"].bias, body["b"].bias)
               + _sq(head["a"].weight, head["b"].weight) + _sq(head["a"].bias, head["b"].bias))
        + 2.0 * (_sq(body["a"].weight, body["c"].weight) + _sq(body["a"].bias, body["c"].bias))
        + 3.0 * (_sq(body["b"].weight, body["c"].weight) + _sq(body["b"].bias, body["c"].bias))
    )  # fmt: skip
    got = mt.soft_sharing_penalty(net, lam)
    assert got.dim() == 0
    torch.testing.assert_close(got, by_hand)
    # one lambda for every pair
    one = mt.soft_sharing_penalty(net, 0.7)
    expected = sum(
        0.7 * _sq(p, q)
        for t, u in [("a", "b"), ("a", "c"), ("b", "c")]
        for p, q in zip(net.network(t), net.network(u))
        if p.shape == q.shape
    )
    torch.testing.assert_close(one, expected)


def test_penalty_gradient_is_the_closed_form():
    """d/dθ_t Σ_{t<u} λ ‖θ_t − θ_u‖² = Σ_{u≠t} 2λ (θ_t − θ_u)."""
    lam = 0.7
    net = _net({"a": 2, "b": 2}, dtype=torch.float64)
    grads = torch.autograd.grad(mt.soft_sharing_penalty(net, lam), net.network("a"))
    for g, p, q in zip(grads, net.network("a"), net.network("b")):
        torch.testing.assert_close(g, 2 * lam * (p - q).detach())
    # three tasks, a dict of lambdas: θ_a is pulled towards each other network by its own λ
    net = _net({"a": 2, "b": 2, "c": 2}, dtype=torch.float64)
    lams = {("a", "b"): 0.5, ("c", "a"): 2.0, ("b", "c"): 3.0}
    grads = torch.autograd.grad(mt.soft_sharing_penalty(net, lams), net.network("a"))
    for g, p, q, r in zip(grads, net.network("a"), net.network("b"), net.network("c")):
        torch.testing.assert_close(g, (2 * 0.5 * (p - q) + 2 * 2.0 * (p - r)).detach())


def test_regularised_objective_gradient_matches_finite_differences():
    """multitask_loss with lam > 0 (task losses plus penalty), in float64: autograd equals central
    differences on every parameter entry."""
    net = _net({"a": 2, "b": 2, "c": 3}, dtype=torch.float64).eval()
    batch = _data(("a", "b", "c"), n=6, dtype=torch.float64)
    lam = {("a", "b"): 0.8, ("a", "c"): 0.3, ("b", "c"): 1.5}
    params = list(net.parameters())
    grads = torch.autograd.grad(mt.multitask_loss(net, batch, lam=lam), params)
    assert mt.soft_sharing_penalty(net, lam).item() > 0.1  # the penalty is really in the loss
    h = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads):
            numeric = torch.zeros_like(p)
            for i in range(p.numel()):
                flat = p.view(-1)
                old = flat[i].item()
                flat[i] = old + h
                up = mt.multitask_loss(net, batch, lam=lam).item()
                flat[i] = old - h
                down = mt.multitask_loss(net, batch, lam=lam).item()
                flat[i] = old
                numeric.view(-1)[i] = (up - down) / (2 * h)
            torch.testing.assert_close(g, numeric, rtol=1e-6, atol=1e-8)


def test_a_large_lambda_makes_the_task_networks_equal():
    """Gradient descent with lr = 0.1 / λ (stable: the penalty's curvature is 4λ along θ_a − θ_b).
    The distance settles where the pull 4λ‖θ_a − θ_b‖ balances the tasks' gradients, so it shrinks
    like 1/λ (measured: 3.5 at λ = 0, then 0.22, 0.011, 1.0e-3, 1.0e-4 at λ = 1 ... 1000)."""
    data = _data()
    distances = {}
    for lam in [0.0, 1.0, 10.0, 100.0, 1000.0]:
        net = _net()
        opt = torch.optim.SGD(net.parameters(), lr=0.1 / max(lam, 1.0))
        fit(
            net,
            mt.task_batches(data, 64),
            lambda m, b, lam=lam: mt.multitask_loss(m, b, lam=lam),
            steps=150,
            optimizer=opt,
            progress=False,
        )
        distances[lam] = _distance(net, "a", "b")
    values = list(distances.values())
    assert all(a > b for a, b in zip(values, values[1:])), distances
    assert distances[0.0] > 1.0, distances  # independent networks stay apart (measured 3.5)
    assert distances[1000.0] < 1e-3, distances
    assert all(lam * d < 0.5 for lam, d in distances.items() if lam >= 10), distances  # ~ c / λ


# --- hard sharing: where the gradients go -----------------------------------------------------


def test_hard_sharing_body_gets_every_tasks_gradient_and_each_head_only_its_own():
    net = _net({"a": 2, "b": 3}, hard=True, dtype=torch.float64)
    batch = _data(("a", "b"), n=8, dtype=torch.float64)
    losses = mt.task_losses(net, batch)
    body = list(net.body.parameters())
    heads = {t: list(net.heads[t].parameters()) for t in net.tasks}
    everything = body + heads["a"] + heads["b"]
    per_task = {
        t: torch.autograd.grad(loss, everything, retain_graph=True, allow_unused=True)
        for t, loss in losses.items()
    }
    total = torch.autograd.grad(mt.multitask_loss(net, batch), everything)
    nb = len(body)
    for i in range(nb):  # the body: the sum of every task's gradient, each one nonzero
        torch.testing.assert_close(total[i], per_task["a"][i] + per_task["b"][i])
        assert per_task["a"][i].abs().sum() > 0 and per_task["b"][i].abs().sum() > 0
    na = len(heads["a"])
    for i in range(nb, nb + na):  # head a: task a's gradient only
        assert per_task["b"][i] is None
        torch.testing.assert_close(total[i], per_task["a"][i])
    for i in range(nb + na, len(everything)):  # head b: task b's only
        assert per_task["a"][i] is None
        torch.testing.assert_close(total[i], per_task["b"][i])


# --- soft sharing with lambda = 0: independent single-task models ------------------------------


def test_task_parameters_gradient_does_not_depend_on_the_other_tasks_data():
    net = _net(dtype=torch.float64)
    data = _data(n=8, dtype=torch.float64)
    other = _data(n=8, seed=1, dtype=torch.float64)
    mixed = {"a": data["a"], "b": other["b"]}
    theta_a = net.network("a")
    g1 = torch.autograd.grad(mt.multitask_loss(net, data), theta_a)
    g2 = torch.autograd.grad(mt.multitask_loss(net, mixed), theta_a)
    g_alone = torch.autograd.grad(mt.task_losses(net, {"a": data["a"]})["a"], theta_a)
    for x, y, z in zip(g1, g2, g_alone):
        assert torch.equal(x, y) and torch.equal(x, z)
    # ... while with lam > 0 it does
    g3 = torch.autograd.grad(mt.multitask_loss(net, data, lam=1.0), theta_a)
    assert any(not torch.allclose(x, y) for x, y in zip(g1, g3))


def test_soft_sharing_without_penalty_trains_task_a_as_if_alone():
    """Two tasks with lam = 0 against task a alone, from the same θ_a, with the same batches of
    a: task_batches draws every task's rows from one generator in dict order, so task b (listed
    second, fewer rows than batch_size) takes the full set and draws nothing."""
    data = _data(n=40)
    data["b"] = (data["b"][0][:8], data["b"][1][:8])
    both = _net()
    alone = _net({"a": 2}, seed=1)
    alone.body["a"].load_state_dict(both.body["a"].state_dict())
    alone.heads["a"].load_state_dict(both.heads["a"].state_dict())
    mt.fit_multitask(both, data, steps=30, batch_size=16, lr=1e-2, seed=3, progress=False)
    mt.fit_multitask(
        alone, {"a": data["a"]}, steps=30, batch_size=16, lr=1e-2, seed=3, progress=False
    )
    moved = False
    for p, q, start in zip(both.network("a"), alone.network("a"), _net().network("a")):
        assert torch.equal(p, q)
        moved |= not torch.equal(p, start)
    assert moved


# --- learned task weights ---------------------------------------------------------------------


def test_uncertainty_weights_value_and_weights():
    uw = mt.UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        uw.log_var.copy_(torch.tensor([0.5, -1.0]))
    losses = {"a": torch.tensor(0.8), "b": torch.tensor(2.5)}
    by_hand = math.exp(-0.5) * 0.8 + 0.5 / 2 + math.exp(1.0) * 2.5 - 1.0 / 2
    assert uw(losses).item() == pytest.approx(by_hand, rel=1e-6)
    assert uw.weights() == pytest.approx({"a": math.exp(-0.5), "b": math.exp(1.0)}, rel=1e-6)
    # inside multitask_loss the learned weights replace the uniform ones
    net = _net(weights=uw)
    batch = _data(n=8)
    torch.testing.assert_close(
        mt.multitask_loss(net, batch), uw(mt.task_losses(net, batch)), rtol=1e-6, atol=1e-7
    )


def test_uncertainty_weights_settle_at_one_over_twice_the_loss():
    """For a fixed L_t, d/ds_t [exp(−s_t) L_t + s_t / 2] = 0 at exp(−s_t) = 1 / (2 L_t)."""
    fixed = {"a": 0.3, "b": 2.0, "c": 5.0}
    uw = mt.UncertaintyWeights(list(fixed)).double()
    losses = {t: torch.tensor(v, dtype=torch.float64) for t, v in fixed.items()}
    opt = torch.optim.SGD(uw.parameters(), lr=0.1)
    for _ in range(400):
        opt.zero_grad()
        uw(losses).backward()
        opt.step()
    for t, w in uw.weights().items():
        assert w == pytest.approx(1 / (2 * fixed[t]), rel=1e-6), uw.weights()


# --- the errors ---------------------------------------------------------------------------------


def test_lambda_dict_pairs_default_to_zero_and_ignore_order():
    net = _net({"a": 2, "b": 2, "c": 2})
    ab = sum(_sq(p, q) for p, q in zip(net.network("a"), net.network("b")))
    torch.testing.assert_close(mt.soft_sharing_penalty(net, {("a", "b"): 2.0}), 2 * ab)
    torch.testing.assert_close(mt.soft_sharing_penalty(net, {("b", "a"): 2.0}), 2 * ab)
    assert mt.soft_sharing_penalty(net, {}).item() == 0.0
    assert mt.soft_sharing_penalty(net, 0.0).item() == 0.0


def test_errors_name_what_is_wrong():
    soft, hard = _net({"a": 2, "b": 2}), _net({"a": 2, "b": 2}, hard=True)
    with pytest.raises(ValueError, match="≥ 0"):
        mt.soft_sharing_penalty(soft, -1.0)
    with pytest.raises(ValueError, match="≥ 0"):
        mt.soft_sharing_penalty(soft, {("b", "a"): -0.5})
    with pytest.raises(ValueError, match="hard=True"):
        mt.soft_sharing_penalty(hard, 1.0)
    with pytest.raises(ValueError, match="hard=True"):
        mt.multitask_loss(hard, _data(n=4), lam=1.0)
    with pytest.raises(ValueError, match="'z'.*a, b"):
        soft("z", torch.zeros(1, IN))
    with pytest.raises(ValueError, match="a, b"):
        soft.network("z")
    with pytest.raises(ValueError, match="at least one task"):
        MultiTaskNet({}, _body, HIDDEN)
    x, y = torch.zeros(3, IN), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="3 inputs and 4 labels"):
        next(mt.task_batches({"a": (x, y)}, 2))
    with pytest.raises(ValueError, match="0 inputs"):
        next(mt.task_batches({"a": (x[:0], y[:0])}, 2))
    with pytest.raises(ValueError, match=r"\['c'\].*head"):
        mt.fit_multitask(soft, _data(("a", "c"), n=4), steps=1, progress=False)


def test_task_batches_sample_every_task_each_step():
    data = _data(n=10)
    data["b"] = (data["b"][0][:3], data["b"][1][:3])
    batch = next(mt.task_batches(data, 4, torch.Generator().manual_seed(0)))
    assert set(batch) == {"a", "b"}
    assert len(batch["a"][0]) == 4 and len(batch["b"][0]) == 3  # fewer rows: all of them


@pytest.mark.parametrize("hard", [True, False])
def test_task_accuracy_on_separable_tasks_after_training(hard):
    train, test = _data(n=64), _data(n=64, seed=1)
    with seeded(0):
        net = MultiTaskNet({"a": 2, "b": 2}, lambda: mt.mlp_body(IN, 16), 16, hard=hard)
    mt.fit_multitask(net, train, steps=150, lr=1e-2, progress=False)
    for task, (x, y) in test.items():
        assert mt.task_accuracy(net, task, x, y) > 0.95, task
    assert not net.training
