"""tlcourse.embeddings (chapter 2): subsampling, noise, pairs, the SGNS gradient, training, gensim."""
import importlib.util

import numpy as np
import pytest
import torch

from tlcourse import embeddings as E
from tlcourse import wordvectors as WV


def test_keep_probability_formula_and_statistics():
    counts = np.array([50_000, 5_000, 500, 50, 5])
    keep = E.keep_probability(counts, 1e-3)
    f = counts / counts.sum()
    assert np.allclose(keep, np.minimum(1, (np.sqrt(f / 1e-3) + 1) * 1e-3 / f))
    assert keep[0] < keep[1] < keep[2] and keep[-1] == 1.0
    assert np.array_equal(E.keep_probability(counts, 0), np.ones(5))
    # Statistical: the share of occurrences a random draw keeps matches the formula (5 sigma).
    rng = np.random.default_rng(0)
    n = 200_000
    kept = (rng.random(n) < keep[0]).mean()
    assert abs(kept - keep[0]) < 5 * np.sqrt(keep[0] * (1 - keep[0]) / n)


def test_noise_table_samples_the_three_quarter_power():
    counts = np.array([1000, 300, 100, 10, 1])
    p = E.noise_distribution(counts)
    assert np.allclose(p, counts ** 0.75 / (counts ** 0.75).sum()) and p.sum() == pytest.approx(1)
    table = E.noise_table(counts, 400_000, np.random.default_rng(1))
    freq = np.bincount(table.numpy(), minlength=5) / len(table)
    assert np.allclose(freq, p, atol=5 * np.sqrt(p * (1 - p) / len(table)).max())
    assert table.min() >= 0 and table.max() <= 4


def test_skipgram_pairs_respect_window_and_sentences():
    ids = torch.arange(10)
    sentence = torch.tensor([0] * 4 + [1] * 6)
    c, o = E.skipgram_pairs(ids, sentence, window=3, generator=torch.Generator().manual_seed(0))
    assert ((c - o).abs() <= 3).all() and ((c - o).abs() >= 1).all()
    assert (sentence[c] == sentence[o]).all()  # never across a boundary
    # With window 1 every neighbour within a sentence is used exactly once in each direction.
    c1, o1 = E.skipgram_pairs(ids, sentence, window=1, generator=torch.Generator().manual_seed(0))
    assert len(c1) == 2 * (3 + 5)


def test_sgns_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(3, 4, generator=g, dtype=torch.float64)
    u = torch.randn(3, 1 + 2, 4, generator=g, dtype=torch.float64)
    loss, grad_v, grad_u = E.sgns_grads(v, u)
    assert torch.allclose(loss, E.sgns_loss(v, u))
    eps = 1e-6
    for tensor, grad in ((v, grad_v), (u, grad_u)):
        numeric = torch.zeros_like(tensor)
        flat, out = tensor.view(-1), numeric.view(-1)
        for k in range(flat.numel()):
            old = flat[k].item()
            flat[k] = old + eps
            up = E.sgns_loss(v, u).sum()
            flat[k] = old - eps
            down = E.sgns_loss(v, u).sum()
            flat[k] = old
            out[k] = (up - down) / (2 * eps)
        assert torch.allclose(grad, numeric, atol=1e-7)


def _toy_corpus():
    """Two families of words that never share a sentence: SGNS must separate them."""
    rng = np.random.default_rng(0)
    a, b = [f"a{i}" for i in range(5)], [f"b{i}" for i in range(5)]
    sentences = [list(rng.choice(a if k % 2 else b, 8)) for k in range(2000)]
    return E.Corpus.build(sentences, min_count=1), a, b


def test_train_sgns_learns_the_families_and_is_deterministic():
    corpus, a, b = _toy_corpus()
    cfg = E.SGNSConfig(vector_size=16, window=2, epochs=2, sample=0, batch=256)
    W1, _, stats = E.train_sgns(corpus, cfg, progress=False)
    W2, _, _ = E.train_sgns(corpus, cfg, progress=False)
    assert torch.equal(W1, W2) and stats.loss[-1] < stats.loss[0]
    wv = WV.WordVectors(corpus.itos, W1)
    within = np.mean([float(wv.unit[wv.stoi[a[0]]] @ wv.unit[wv.stoi[x]]) for x in a[1:]])
    across = np.mean([float(wv.unit[wv.stoi[a[0]]] @ wv.unit[wv.stoi[x]]) for x in b])
    assert within > across + 0.3, (within, across)


def test_corpus_build():
    corpus = E.Corpus.build([["b", "a", "a"], ["c", "a", "b"]], min_count=2)
    assert corpus.itos == ["a", "b"] and corpus.counts.tolist() == [3, 2]
    assert corpus.ids.tolist() == [1, 0, 0, 0, 1] and corpus.sentence.tolist() == [0, 0, 0, 1, 1]
    assert corpus.n_raw_tokens == 6


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="gensim not installed (tlcourse[peers])")
def test_gensim_peer_is_deterministic_and_uses_the_same_vocabulary():
    corpus, a, b = _toy_corpus()
    sentences = [[corpus.itos[i] for i in corpus.ids[corpus.sentence == k]] for k in range(50)]
    cfg = E.SGNSConfig(vector_size=8, epochs=1)
    words, vectors, _ = E.gensim_word2vec(sentences, cfg, min_count=1)
    words2, vectors2, _ = E.gensim_word2vec(sentences, cfg, min_count=1)
    assert words == words2 and torch.equal(vectors, vectors2) and set(words) == set(a + b)
