"""tlcourse.glove: co-occurrence counts against brute force, the weighting function, training."""
import numpy as np
import pytest
import torch

from tlcourse import embeddings as E
from tlcourse import glove as G


def test_cooccurrence_matches_brute_force():
    sentences = [["a", "b", "c", "a"], ["b", "b"], ["c"]]
    corpus = E.Corpus.build(sentences, min_count=1)
    rows, cols, counts = G.cooccurrence(corpus, window=2)
    got = {(corpus.itos[i], corpus.itos[j]): x for i, j, x in zip(rows, cols, counts)}
    expected = {}
    for s in sentences:
        for p, w in enumerate(s):
            for q, x in enumerate(s):
                if 0 < abs(p - q) <= 2:
                    expected[(w, x)] = expected.get((w, x), 0) + 1 / abs(p - q)
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v) for k, v in expected.items())


def test_weighting_function():
    x = torch.tensor([0.5, 5.0, 10.0, 50.0])
    assert torch.allclose(G.weighting(x, 10, 0.75), torch.tensor([0.05 ** 0.75, 0.5 ** 0.75, 1.0, 1.0]))
    assert torch.allclose(G.weighting(x, 100, 1.0), x / 100)


def test_glove_fits_log_counts():
    rng = np.random.default_rng(0)
    sentences = [list(rng.choice(["a", "b", "c", "d", "e", "f"], 10)) for _ in range(300)]
    corpus = E.Corpus.build(sentences, min_count=1)
    vectors, stats = G.train_glove(corpus, G.GloVeConfig(vector_size=8, epochs=30, batch=64), progress=False)
    assert vectors.shape == (6, 8) and stats.nonzeros == 36
    assert stats.loss[-1] < 0.05 * stats.loss[0]


def test_hand_written_gradients_match_autograd_and_finite_differences():
    g = torch.Generator().manual_seed(0)
    wi = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    wj = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    f = torch.rand(7, generator=g, dtype=torch.float64)
    log_x = torch.randn(7, generator=g, dtype=torch.float64)
    loss, grad_i, grad_j = G.glove_grads(wi.detach(), wj.detach(), f, log_x)

    def half_j(a, b):  # eq. 8 of Pennington et al. for this batch, halved
        return 0.5 * (f * ((a[:, :4] * b[:, :4]).sum(1) + a[:, 4] + b[:, 4] - log_x) ** 2).sum()

    half_j(wi, wj).backward()
    assert torch.allclose(loss, 2 * half_j(wi, wj).detach())
    assert torch.allclose(grad_i, wi.grad) and torch.allclose(grad_j, wj.grad)
    assert torch.autograd.gradcheck(half_j, (wi, wj))  # autograd itself agrees with differences
