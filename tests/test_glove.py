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
