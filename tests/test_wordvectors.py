"""tlcourse.wordvectors: analogy evaluation on hand-built vectors with known answers; Spearman vs scipy."""
import datasets
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from tlcourse import wordvectors as WV

# Axis 0 = "royalty", axis 1 = "female", axis 2 = "country", axis 3 = "capital": king - man + woman = queen.
WORDS = ["man", "woman", "king", "queen", "france", "paris", "italy", "rome", "boy"]
VECTORS = torch.tensor([
    [0, 0, 0, 0, 1.0], [0, 1, 0, 0, 1.0], [1, 0, 0, 0, 1.0], [1, 1, 0, 0, 1.0],
    [0, 0, 1, 0, 0.2], [0, 0, 1, 1, 0.2], [0, 0, 1.1, 0, 0.3], [0, 0, 1.1, 1, 0.3], [0, 0, 0, 0, 0.9],
])


def _questions(rows):
    return datasets.Dataset.from_dict({"section": [r[0] for r in rows], "a": [r[1] for r in rows], "b": [r[2] for r in rows],
                                       "c": [r[3] for r in rows], "d": [r[4] for r in rows]})


def test_analogies_with_known_answers():
    wv = WV.WordVectors(WORDS, VECTORS)
    q = _questions([("family", "Man", "King", "Woman", "Queen"), ("capital-common-countries", "France", "Paris", "Italy", "Rome"),
                    ("gram1-adjective-to-adverb", "man", "woman", "king", "boy"), ("family", "man", "king", "woman", "zebra")])
    res = WV.analogy_accuracy(wv, q)
    assert res["answered"] == 3 and res["skipped"] == 1
    assert res["semantic"] == 1.0 and res["syntactic"] == 0.0 and res["accuracy"] == pytest.approx(2 / 3)
    ids = torch.tensor([[0, 2, 1]])
    assert WV.three_cos_add(wv.unit, *ids.T).tolist() == [3]
    # restrict_vocab: with only the first 4 words as candidates, the capital question is skipped.
    assert WV.analogy_accuracy(wv, q, restrict_vocab=4)["answered"] == 1


def test_three_cos_add_never_answers_a_question_word():
    unit = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]), dim=1)
    assert WV.three_cos_add(unit, torch.tensor([0]), torch.tensor([1]), torch.tensor([0])).tolist() == [2]


def test_similarity_matches_scipy_and_counts_oov():
    rng = np.random.default_rng(0)
    wv = WV.WordVectors(WORDS, VECTORS + 0.1 * torch.from_numpy(rng.normal(size=VECTORS.shape)).float())
    pairs = datasets.Dataset.from_dict({"word1": ["man", "king", "france", "paris", "boy", "zzz"],
                                        "word2": ["woman", "queen", "italy", "rome", "man", "man"],
                                        "score": [5.0, 7.0, 6.0, 6.5, 8.0, 1.0]})
    res = WV.similarity_spearman(wv, pairs)
    cos = [float(wv.unit[wv.stoi[a]] @ wv.unit[wv.stoi[b]]) for a, b in zip(pairs["word1"][:5], pairs["word2"][:5])]
    assert res["spearman"] == pytest.approx(spearmanr(cos, pairs["score"][:5]).statistic)
    assert res["pairs"] == 5 and res["oov"] == 1


def test_most_similar_and_errors():
    wv = WV.WordVectors(WORDS, VECTORS)
    assert wv.most_similar("king", 1)[0][0] == "queen" and "king" not in dict(wv.most_similar("king", 8))
    with pytest.raises(KeyError, match="not in the vocabulary"):
        wv.most_similar("zebra")
    with pytest.raises(ValueError, match="9 words but 2 vectors"):
        WV.WordVectors(WORDS, VECTORS[:2])
