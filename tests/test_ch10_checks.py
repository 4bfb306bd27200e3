"""Chapter 10's self-checks (``tlcourse.checks.selfsup``): each passes the reference, tells a stub
it is not implemented, and catches each planted mistake with a hint that names it, showing no
code."""

import pytest
import torch
import torch.nn.functional as F
from planted import assert_catches_planted

from tlcourse import checks, ssl


def _eye(k):
    return torch.eye(k, dtype=torch.bool)


def _negatives(scores):
    return scores.masked_fill(_eye(len(scores)), float("-inf"))


def _nt_xent_parts(z1, z2, temperature, normalise=True, mask=True):
    """The 2n x 2n scores and each view's partner, with the two steps students forget as flags."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    z = F.normalize(z, dim=1) if normalise else z
    sim = z @ z.T / temperature
    sim = sim.masked_fill(_eye(2 * n), float("-inf")) if mask else sim
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return sim, partner


def _nt_xent(z1, z2, temperature, **flags):
    sim, partner = _nt_xent_parts(z1, z2, temperature, **flags)
    return F.cross_entropy(sim, partner)


def _zero_diagonal(z1, z2, t):
    sim, partner = _nt_xent_parts(z1, z2, t, mask=False)
    return sim.masked_fill(_eye(len(sim)), 0.0), partner


def _one_direction(z1, z2, temperature):
    sim, partner = _nt_xent_parts(z1, z2, temperature)
    n = z1.shape[0]
    return F.cross_entropy(sim[:n], partner[:n])


def _cross_view_only(z1, z2, temperature):  # CLIP's loss: no negatives from the same view
    a, b = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    target = torch.arange(len(a))
    logits = a @ b.T / temperature
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _rotations(images, turn=1, interleave=True):
    turned = torch.cat([torch.rot90(images, turn * r, dims=(-2, -1)) for r in range(4)])
    labels = torch.arange(4)
    labels = labels.repeat_interleave(len(images)) if interleave else labels.repeat(len(images))
    return turned, labels


def _each_image_four_times(images):  # image 0 at 0, 90, 180, 270, then image 1, ...
    turned = torch.stack([torch.rot90(images, r, dims=(-2, -1)) for r in range(4)], dim=1)
    return turned.flatten(0, 1), torch.arange(4).repeat(len(images))


# check: (reference, {planted mistake: (function, words its report must contain)})
PLANTED = {
    "info_nce": (ssl.info_nce, {
        "a sum over the rows, not a mean": (
            lambda s: (s.logsumexp(1) - s.diagonal()).sum(), "the mean over the rows"),
        "the positive left out of the denominator": (
            lambda s: (_negatives(s).logsumexp(1) - s.diagonal()).mean(),
            "the positive counted among the k candidates"),
        "detached": (lambda s: ssl.info_nce(s).detach(), "no gradient reaches them"),
        "a float, not a tensor": (lambda s: ssl.info_nce(s).item(), "expected an array/tensor"),
        "one loss per row, no mean": (
            lambda s: s.logsumexp(1) - s.diagonal(), "expected shape (), got shape (5,)"),
        "the softmax down the columns": (
            lambda s: (s.logsumexp(0) - s.diagonal()).mean(), "along each row (dim 1)"),
        "exp, sum, divide: overflows": (
            lambda s: -(s.exp().diagonal() / s.exp().sum(1)).log().mean(), "numerical stability"),
        "the wrong sign": (lambda s: -ssl.info_nce(s), "log k"),
    }),
    "nt_xent": (ssl.nt_xent, {
        "not normalised": (
            lambda z1, z2, t: _nt_xent(z1, z2, t, normalise=False), "normalise"),
        "the view itself not masked": (
            lambda z1, z2, t: _nt_xent(z1, z2, t, mask=False), "mask the diagonal with -inf"),
        "its diagonal set to 0, not -inf": (
            lambda z1, z2, t: F.cross_entropy(*_zero_diagonal(z1, z2, t)), "mask the diagonal"),
        "the first n views only": (_one_direction, "over all 2n views"),
        "no negatives from the same view": (_cross_view_only, "over all 2n views"),
        "multiplied by the temperature": (
            lambda z1, z2, t: _nt_xent(z1, z2, 1 / t), "s = z z^T / tau"),
        "the temperature ignored": (
            lambda z1, z2, t: _nt_xent(z1, z2, 0.5), "use the temperature you are given"),
        "detached": (lambda z1, z2, t: ssl.nt_xent(z1, z2, t).detach(), "no gradient"),
    }),
    "rotations": (ssl.rotations, {
        "clockwise": (lambda x: _rotations(x, turn=-1), "counter-clockwise: torch.rot90"),
        "transposed, not turned": (
            lambda x: (torch.cat([x, x.mT, x.flip(-2, -1), x.flip(-2, -1).mT]),
                       torch.arange(4).repeat_interleave(len(x))), "counter-clockwise"),
        "labels in the wrong order": (
            lambda x: _rotations(x, interleave=False), "repeat_interleave(n)"),
        "each image's four turns together": (_each_image_four_times, "all n images at 0 degrees"),
        "labels 1 to 4": (
            lambda x: (_rotations(x)[0], _rotations(x)[1] + 1), "output[1]"),
    }),
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(PLANTED))
def test_chapter10_checks_catch_planted_mistakes(check, capsys):
    reference, planted = PLANTED[check]
    assert_catches_planted(getattr(checks.selfsup, check), reference, planted, capsys)


def test_the_checks_accept_other_right_answers():
    """Solutions written another way than the reference pass: cross-entropy forms, masking by a
    large negative number, turning by flips."""

    def info_nce_ce(scores):
        return F.cross_entropy(scores, torch.arange(len(scores)))

    def nt_xent_big_negative(z1, z2, temperature):
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = z @ z.T / temperature - 1e9 * torch.eye(len(z), dtype=z.dtype)
        n = len(z1)
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        return -F.log_softmax(sim, dim=1)[torch.arange(2 * n), partner].mean()

    def rotations_by_flips(images):
        turns = [images, images.mT.flip(-2), images.flip(-2, -1), images.flip(-2).mT]
        return torch.cat(turns), torch.arange(4).repeat_interleave(len(images))

    assert checks.selfsup.info_nce(info_nce_ce)
    assert checks.selfsup.nt_xent(nt_xent_big_negative)
    assert checks.selfsup.rotations(rotations_by_flips)


def test_the_selfsup_checks_are_registered_after_finetuning():
    modules = checks.CHAPTER_MODULES
    assert modules.index(checks.selfsup) == modules.index(checks.finetuning) + 1
    assert all(
        getattr(checks.selfsup, name).keeps_global_rng
        for name in ("info_nce", "nt_xent", "rotations")
    )
