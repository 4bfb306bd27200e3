"""tlcourse.train: the loop against a closed form, parameter restriction, evaluation, errors."""
import pytest
import torch
import torch.nn.functional as F

from tlcourse import train


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def test_fit_reaches_the_least_squares_solution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3 + 0.05 * torch.randn(200, 1, generator=g)
    design = torch.cat([x, torch.ones(200, 1)], 1)
    closed = torch.linalg.lstsq(design, y).solution.squeeze()
    model = torch.nn.Linear(3, 1)
    hist = train.fit(model, train.random_batches(x, y, batch_size=500), _mse, steps=1500, lr=0.05, progress=False)
    fitted = torch.cat([model.weight.squeeze(), model.bias]).detach()
    assert torch.allclose(fitted, closed, atol=1e-3), (fitted, closed)
    assert hist.loss[-1] < hist.loss[0] / 10 and len(hist.loss) == len(hist.steps) == 1500


def test_only_given_parameters_change_and_eval_is_logged():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    frozen = model[0].weight.detach().clone()
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    calls = []

    def eval_fn(m):
        calls.append(m.training)
        return {"mse": F.mse_loss(m(x), y)}

    hist = train.fit(model, train.random_batches(x, y, batch_size=8), _mse, steps=20,
                     params=model[1].parameters(), eval_fn=eval_fn, eval_every=5, progress=False)
    assert torch.equal(model[0].weight, frozen)
    assert hist.eval_steps == [5, 10, 15, 20] and len(hist.metrics["mse"]) == 4
    assert calls == [False] * 4 and hist.last("mse") == hist.metrics["mse"][-1]
    with pytest.raises(KeyError, match="it has: loss, mse"):
        hist.last("accuracy")


def test_random_batches_are_reproducible_and_checked():
    x, y = torch.arange(10), torch.arange(10) * 2
    a = next(train.random_batches(x, y, batch_size=4, generator=torch.Generator().manual_seed(1)))
    b = next(train.random_batches(x, y, batch_size=4, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], 2 * a[0])
    full = next(train.random_batches(x, y, batch_size=100))
    assert torch.equal(full[0], x)
    with pytest.raises(ValueError, match="different lengths"):
        next(train.random_batches(x, y[:5], batch_size=2))


def test_errors_are_clear():
    model = torch.nn.Linear(2, 1)
    batches = train.random_batches(torch.randn(4, 2), torch.randn(4, 1), batch_size=2)
    with pytest.raises(ValueError, match="steps must be positive"):
        train.fit(model, batches, _mse, steps=0)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        train.fit(model, batches, _mse, steps=1)


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert train.accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        train.accuracy(logits, torch.tensor([0, 1]))


def test_warmup_then_linear_decay_schedule():
    # the learning rate the optimiser used at each step, read from a plain SGD step on a known gradient
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    x, y = torch.ones(1, 1), torch.zeros(1, 1)
    weights = []

    def loss_fn(m, batch):
        weights.append(m.weight.item())
        return m(batch[0]).sum()      # gradient 1: each step moves the weight by -lr

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    train.fit(model, train.random_batches(x, y, batch_size=1), loss_fn, steps=10, optimizer=opt, warmup=4, progress=False)
    weights.append(model.weight.item())
    lrs = [a - b for a, b in zip(weights, weights[1:])]
    want = [min((s + 1) / 4, (10 - s) / 6) for s in range(10)]
    assert lrs == pytest.approx(want, abs=1e-6), lrs
