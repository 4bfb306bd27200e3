"""tlcourse.chapters.ch02_embeddings: the three modes set up the embedding layer as they claim."""
import datasets
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
    cfg = ch.EmbeddingChapterConfig(budgets=(4, 0), seeds=1, hidden=4, min_steps=30, max_steps=30, lr=0.05)
    records = ch.modes_curve(WV, train, test, cfg, progress=False)
    assert [(r["condition"], r["budget"]) for r in records] == [(m, b) for b in (4, 40) for m in ch.MODES]
    frozen_all = [r for r in records if r["condition"] == "frozen" and r["budget"] == 40][0]
    assert frozen_all["accuracy"] == 1.0  # good and bad are opposite vectors: a frozen embedding suffices
