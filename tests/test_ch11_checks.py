"""Chapter 11's self-checks (``tlcourse.checks.multitask``): each passes the reference, tells a
stub it is not implemented, and catches each planted mistake with a hint that names it, showing no
code."""

import itertools

import numpy as np
import pytest
import torch
from planted import assert_catches_planted

from tlcourse import checks, icl
from tlcourse import multitask as mt


# the reference solutions as the chapter shows them
def soft_sharing_penalty(networks, lam):
    total = torch.zeros(())
    for t in range(len(networks)):
        for u in range(t + 1, len(networks)):
            for a, b in zip(networks[t], networks[u]):
                total = total + lam * (a - b).pow(2).sum()
    return total


def uncertainty_loss(losses, log_vars):
    return (torch.exp(-log_vars) * losses + log_vars / 2).sum()


def least_squares(xs, ys):
    preds = torch.zeros_like(ys)  # column 0: no points yet, predict 0
    for i in range(1, ys.shape[1]):
        w = torch.linalg.pinv(xs[:, :i]) @ ys[:, :i, None]  # (batch, dim, 1), fit to points < i
        preds[:, i] = (xs[:, i, None] @ w)[:, 0, 0]
    return preds


def _penalty(networks, lam, pairs=None, distance=lambda a, b: (a - b).pow(2).sum(), tensors=None):
    """The penalty with the steps students get wrong as arguments."""
    pairs = pairs or itertools.combinations(range(len(networks)), 2)
    total = torch.zeros(())
    for t, u in pairs:
        for a, b in list(zip(networks[t], networks[u]))[:tensors]:
            total = total + lam * distance(a, b)
    return total


def _ordered_pairs(networks):
    return [(t, u) for t in range(len(networks)) for u in range(len(networks)) if t != u]


def _neighbours(networks):
    return [(t, t + 1) for t in range(len(networks) - 1)]


def _mean_over_pairs(networks, lam):
    pairs = list(itertools.combinations(range(len(networks)), 2))
    return _penalty(networks, lam, pairs) / len(pairs)


def _lsq(xs, ys, points=lambda i: i, query=lambda i: i, solve=None, out=torch.zeros_like):
    """least_squares with the steps students get wrong as arguments: how many points column i
    fits (``points(i)``, the first ones), whose x it predicts at, how w is solved, and the buffer
    column 0 is left in."""
    preds = out(ys)
    for i in range(1, ys.shape[1]):
        x, y = xs[:, : points(i)], ys[:, : points(i), None]
        w = torch.linalg.pinv(x) @ y if solve is None else solve(x, y)
        preds[:, i] = (xs[:, query(i), None] @ w)[:, 0, 0]
    return preds


def _normal_equations(x, y):
    return torch.linalg.solve(x.mT @ x, x.mT @ y)


def _lstsq_gels(x, y):
    return torch.linalg.lstsq(x, y, driver="gels").solution


def _all_points(xs, ys):
    """w fitted once to every point, y_i and later ones included."""
    preds = (xs @ (torch.linalg.pinv(xs) @ ys[..., None]))[..., 0]
    preds[:, 0] = 0
    return preds


# check: (reference, {planted mistake: (function, words its report must contain)})
PLANTED = {
    "soft_sharing_penalty": (soft_sharing_penalty, {
        "each pair twice (t != u)": (
            lambda n, lam: _penalty(n, lam, _ordered_pairs(n)), "counted the pair twice"),
        "the norm, not its square": (
            lambda n, lam: _penalty(n, lam, distance=lambda a, b: (a - b).norm()),
            "forgot the square"),
        "a mean over the entries": (
            lambda n, lam: _penalty(n, lam, distance=lambda a, b: (a - b).pow(2).mean()),
            "averaged over the entries"),
        "lambda missing": (lambda n, lam: _penalty(n, 1.0), "multiply by lambda"),
        "a mean over the pairs": (_mean_over_pairs, "not their mean"),
        "neighbouring networks only": (
            lambda n, lam: _penalty(n, lam, _neighbours(n)), "not only neighbours"),
        "pairs with the first network only": (
            lambda n, lam: _penalty(n, lam, [(0, u) for u in range(1, len(n))]),
            "pairs with the first network"),
        "the first tensor only": (lambda n, lam: _penalty(n, lam, tensors=1), "not only the first"),
        "detached": (lambda n, lam: soft_sharing_penalty(n, lam).detach(), "no gradient reaches"),
        "a float, not a tensor": (
            lambda n, lam: soft_sharing_penalty(n, lam).item(), "expected an array/tensor"),
        "sqrt, then squared": (
            lambda n, lam: _penalty(n, lam, distance=lambda a, b: ((a - b) ** 2).sum().sqrt() ** 2),
            "NaN gradient comes from a square root"),
    }),
    "uncertainty_loss": (uncertainty_loss, {
        "exp(s) instead of exp(-s)": (
            lambda L, s: (torch.exp(s) * L + s / 2).sum(), "exp(s) instead of exp(-s)"),
        "no s/2 term": (lambda L, s: (torch.exp(-s) * L).sum(), "the s/2 term is missing"),
        "s instead of s/2": (lambda L, s: (torch.exp(-s) * L + s).sum(), "s instead of s/2"),
        "a mean over the tasks": (
            lambda L, s: (torch.exp(-s) * L + s / 2).mean(), "not averaged"),
        "one value per task, no sum": (
            lambda L, s: torch.exp(-s) * L + s / 2, "expected shape (), got shape (3,)"),
        "the weight halved (1 / (2 sigma^2))": (
            lambda L, s: (torch.exp(-s) * L / 2 + s / 2).sum(), "halved the weights"),
        "detached": (lambda L, s: uncertainty_loss(L, s).detach(), "no gradient reaches"),
        "log_vars detached": (
            lambda L, s: uncertainty_loss(L, s.detach()), "gradient wrt log_vars"),
    }),
    "least_squares": (least_squares, {
        "all n points, y_i included": (_all_points, "the prediction for point i used y_i"),
        "all n points, column 0 too": (
            lambda xs, ys: (xs @ (torch.linalg.pinv(xs) @ ys[..., None]))[..., 0],
            "its prediction used y_0"),
        "points up to i inclusive": (
            lambda xs, ys: _lsq(xs, ys, points=lambda i: i + 1),
            "the prediction for point i used y_i"),
        "one point too few": (
            lambda xs, ys: _lsq(xs, ys, points=lambda i: i - 1), "one point too few"),
        "predicted at x_{i-1}": (
            lambda xs, ys: _lsq(xs, ys, query=lambda i: i - 1), "instead of the point's own x_i"),
        "column 0 left at y_0": (
            lambda xs, ys: _lsq(xs, ys, out=torch.clone), "column 0 was never set to 0"),
        "normal equations": (
            lambda xs, ys: _lsq(xs, ys, solve=_normal_equations), "X^T X is singular"),
        "lstsq with driver='gels'": (
            lambda xs, ys: _lsq(xs, ys, solve=_lstsq_gels), "torch.linalg.pinv"),
        "w, not the predictions": (
            lambda xs, ys: (torch.linalg.pinv(xs) @ ys[..., None])[..., 0], "not w itself"),
    }),
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(PLANTED))
def test_chapter11_checks_catch_planted_mistakes(check, capsys):
    reference, planted = PLANTED[check]
    assert_catches_planted(getattr(checks.multitask, check), reference, planted, capsys)


def test_the_checks_accept_other_right_answers():
    """Solutions written another way than the reference pass: every ordered pair halved, t = u
    included (adds 0), flattened networks, norm squared, a constant 0 for lambda = 0, the
    weights as 1 / sigma^2, and tlcourse.multitask's own pieces."""

    def penalty_all_pairs_halved(networks, lam):
        flat = [torch.cat([p.flatten() for p in net]) for net in networks]
        return lam / 2 * sum(((a - b) ** 2).sum() for a in flat for b in flat)

    def penalty_norm_squared(networks, lam):
        if lam == 0:
            return torch.tensor(0.0)
        pairs = itertools.combinations(networks, 2)
        return sum(
            lam * torch.linalg.vector_norm(a - b) ** 2 for n, m in pairs for a, b in zip(n, m)
        )

    def penalty_from_a_multitask_net(networks, lam):
        # the networks loaded into a soft-shared MultiTaskNet whose bodies hold every tensor
        class Holder(torch.nn.Module):
            def __init__(self, tensors):
                super().__init__()
                self.held = tensors

            def parameters(self, recurse=True):
                return iter(self.held)

        net = mt.MultiTaskNet(
            {t: 1 for t in map(str, range(len(networks)))},
            lambda: torch.nn.Identity(),
            1,
            hard=False,
        )
        for t, tensors in zip(net.tasks, networks):
            net.body[t] = Holder(tensors)
            net.heads[t].load_state_dict(net.heads["0"].state_dict())  # equal heads add 0
        return mt.soft_sharing_penalty(net, lam)

    def uncertainty_as_precision(losses, log_vars):
        precision = 1 / log_vars.exp()
        return torch.sum(precision * losses) + 0.5 * log_vars.sum()

    def uncertainty_from_the_module(losses, log_vars):
        weights = mt.UncertaintyWeights([str(i) for i in range(len(losses))])
        del weights.log_var
        weights.log_var = log_vars  # a plain tensor in place of the parameter
        return weights({str(i): loss for i, loss in enumerate(losses)})

    for fn in (penalty_all_pairs_halved, penalty_norm_squared, penalty_from_a_multitask_net):
        assert checks.multitask.soft_sharing_penalty(fn), fn.__name__
    for fn in (uncertainty_as_precision, uncertainty_from_the_module):
        assert checks.multitask.uncertainty_loss(fn), fn.__name__


def test_the_least_squares_check_accepts_other_right_answers():
    """gelsd (rank-revealing, minimum-norm), a loop over the prompts with numpy, work in float32
    (the check's tolerance allows it), and tlcourse.icl's own baseline all pass."""

    def with_gelsd(xs, ys):
        return _lsq(xs, ys, solve=lambda x, y: torch.linalg.lstsq(x, y, driver="gelsd").solution)

    def with_numpy(xs, ys):
        x, y = xs.numpy(), ys.numpy()
        preds = np.zeros_like(y)
        for b in range(len(y)):
            for i in range(1, y.shape[1]):
                preds[b, i] = x[b, i] @ np.linalg.pinv(x[b, :i]) @ y[b, :i]
        return preds

    def in_float32(xs, ys):
        return least_squares(xs.float(), ys.float())

    for fn in (with_gelsd, with_numpy, in_float32, icl.least_squares):
        assert checks.multitask.least_squares(fn), fn.__name__


def test_a_check_given_a_value_says_to_pass_the_function():
    result = checks.multitask.uncertainty_loss(uncertainty_loss(torch.ones(2), torch.zeros(2)))
    assert not result and "pass the function itself" in result.message
    result = checks.multitask.soft_sharing_penalty(torch.tensor(0.0))
    assert not result and "pass the function itself" in result.message
    result = checks.multitask.least_squares(torch.zeros(2, 5))
    assert not result and "pass the function itself" in result.message


def test_the_multitask_checks_are_registered_after_selfsup():
    modules = checks.CHAPTER_MODULES
    assert modules.index(checks.multitask) == modules.index(checks.selfsup) + 1
    assert all(
        getattr(checks.multitask, name).keeps_global_rng
        for name in ("soft_sharing_penalty", "uncertainty_loss", "least_squares")
    )
