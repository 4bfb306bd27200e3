"""tlcourse.chapters.ch02_embeddings: the three modes set up the embedding layer as they claim."""
import datasets
import numpy as np
import pytest
import torch

from tlcourse.chapters import ch02_embeddings as ch
from tlcourse.wordvectors import WordVectors

WV = WordVectors(["good", "bad", "film"], torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))


def test_modes_initialise_and_freeze_the_embedding():
    torch.manual_seed(0)
    scratch, frozen, tuned = (ch.make_model(WV, m, 2, 4) for m in ch.MODES)
    assert not torch.equal(scratch.embed.weight[1:4], WV.vectors) and scratch.embed.weight.requires_grad
    for model, trainable in ((frozen, False), (tuned, True)):
        assert torch.equal(model.embed.weight[1:4], WV.vectors) and model.embed.weight.requires_grad == trainable
        assert torch.equal(model.embed.weight[0], torch.zeros(2))  # <unk>
    with pytest.raises(ValueError, match="choose one of scratch, frozen, fine-tuned"):
        ch.make_model(WV, "partly", 2, 4)


def test_encode_drops_unknown_words_and_coverage():
    vocab = ch.vocab_of(WV)
    x = ch.encode(vocab, ["Good film", "unseen words only"], max_len=3)
    assert x.tolist() == [[1, 3, 4], [0, 4, 4]]
    assert ch.coverage(vocab, ["good film", "a bad film"]) == pytest.approx(4 / 5)


def test_modes_curve_records():
    train = datasets.Dataset.from_dict({"sentence": ["good film", "bad film"] * 20, "label": [1, 0] * 20})
    test = datasets.Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0]})
    cfg = ch.EmbeddingChapterConfig(budgets=(4, 0), seeds=2, hidden=4, min_steps=30, max_steps=30, lr=0.05)
    other = WordVectors(WV.itos, WV.vectors.flip(1))
    records = ch.modes_curve({"A": WV, "B": other}, train, test, cfg, progress=False)
    names = ch.conditions(["A", "B"])
    assert names == ["scratch", "A, frozen", "A, fine-tuned", "B, frozen", "B, fine-tuned"]
    assert [(r["condition"], r["budget"]) for r in records] == [(n, b) for _ in range(2) for b in (4, 40) for n in names]
    frozen_all = [r for r in records if r["condition"] == "A, frozen" and r["budget"] == 40][0]
    assert frozen_all["accuracy"] == 1.0  # good and bad are opposite vectors: a frozen embedding suffices
    table = ch.seed_table(records, "A, frozen")
    assert table.shape == (2, 2) and table[0, 1] == frozen_all["accuracy"]
    with pytest.raises(ValueError, match="share one vocabulary"):
        ch.modes_curve({"A": WV, "C": WordVectors(["good", "bad"], WV.vectors[:2])}, train, test, cfg, progress=False)


def test_paired_runs_share_subsets_and_initial_head():
    """Within a seed, two sets of identical vectors give identical results: the conditions are paired."""
    train = datasets.Dataset.from_dict({"sentence": ["good film", "bad film", "film"] * 20, "label": [1, 0, 1] * 20})
    test = datasets.Dataset.from_dict({"sentence": ["good", "bad film"], "label": [1, 0]})
    cfg = ch.EmbeddingChapterConfig(budgets=(6,), seeds=2, hidden=4, min_steps=5, max_steps=5, lr=0.01)
    records = ch.modes_curve({"A": WV, "B": WordVectors(WV.itos, WV.vectors.clone())}, train, test, cfg,
                             progress=False)
    for mode in ("frozen", "fine-tuned"):
        assert (ch.seed_table(records, f"A, {mode}") == ch.seed_table(records, f"B, {mode}")).all()


def test_task_vectors_keep_only_the_task_words_in_order():
    sub = ch.task_vectors(WV, {"film", "good", "unseen"})
    assert sub.itos == ["good", "film"] and torch.equal(sub.vectors, WV.vectors[[0, 2]])


def test_mean_se_is_the_standard_error_over_seeds():
    m, se = ch.mean_se(np.array([[0.5, 1.0], [0.7, 1.0], [0.6, 1.0]]))
    assert m == pytest.approx([0.6, 1.0]) and se == pytest.approx([0.1 / np.sqrt(3), 0.0])


def test_corpus_coverage_counts_target_tokens_with_enough_occurrences():
    corpus = [["a", "film", "a"], ["the", "film"]]
    target = [["a", "film", "film"], ["the", "plot"]]
    assert ch.corpus_coverage(corpus, target) == pytest.approx(4 / 5)
    assert ch.corpus_coverage(corpus, target, min_count=2) == pytest.approx(3 / 5)  # 'the' seen once
    assert ch.corpus_coverage(corpus, [[]]) == 0.0


def test_sample_tokens_reaches_the_size_without_repeats():
    sentences = [[str(i)] * (i % 5 + 1) for i in range(100)]
    sample = ch.sample_tokens(sentences, 50, seed=1)
    total = sum(map(len, sample))
    assert 50 <= total < 55 and len({s[0] for s in sample}) == len(sample)
    assert sample == ch.sample_tokens(sentences, 50, seed=1) != ch.sample_tokens(sentences, 50, seed=2)


def test_count_histogram_matches_the_cooccurrence_counts(monkeypatch, tmp_path):
    from tlcourse import embeddings, glove

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    words = "the whale and the ship the sea and the whale".split()
    corpus = embeddings.Corpus.build([words, words[::-1], words[2:]] * 5 + [["a", "rare", "pair"]], min_count=1)
    counts = glove.cooccurrence(corpus, 3)[2]
    for _ in range(2):  # computed, then read back from the cache
        sizes = ch.count_histogram(corpus, 3, 1)
        assert sizes["nonzeros"] == len(counts)
        assert sizes["share"].sum() == pytest.approx(1.0)
        for t in (1, 10, 100):
            assert sizes["at_least"][t] == pytest.approx((counts >= t).mean(), abs=1e-6)
    assert 0 < sizes["at_least"][10] < sizes["at_least"][1] < 1
