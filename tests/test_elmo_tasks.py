"""tlcourse.elmo_tasks and elmo_probes: vocabulary, batches, perplexities, heads, probes."""
import math

import numpy as np
import pytest
import torch

from tlcourse import elmo_probes, elmo_tasks
from tlcourse.elmo_tasks import ElmoChapterConfig


def test_vocab_and_batches():
    sentences = [["The", "cat"], ["the", "cat", "sat"], ["The", "dog"]]
    itos = elmo_tasks.word_vocab(sentences, min_count=2)
    assert itos == ["<unk>", "<s>", "</s>", "The", "cat"]
    chars, words, lengths = elmo_tasks.make_batch(sentences, {w: i for i, w in enumerate(itos)}, max_chars=8)
    assert chars.shape == (3, 5, 8) and lengths.tolist() == [4, 5, 4]
    assert words[1].tolist() == [1, 0, 4, 0, 2]  # <s> the(unk) cat sat(unk) </s>


def test_unigram_perplexity_by_hand():
    itos = ["<unk>", "<s>", "</s>", "a", "b"]
    train = [["a", "a", "b"]]
    # add-one counts over the vocabulary: unk 1, <s> 1, </s> 2, a 3, b 2 -> total 9
    held = [["a"]]
    expected = math.exp(-(math.log(3 / 9) + math.log(2 / 9)) / 2)
    assert elmo_tasks.unigram_perplexity(train, held, itos) == pytest.approx(expected)


def test_train_head_learns_separable_features_and_prefers_the_informative_layer():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    informative = torch.nn.functional.one_hot(y, 3).float() * 3 + 0.3 * torch.randn(600, 3, generator=g)
    noise = torch.randn(600, 3, generator=g)
    x = torch.stack([noise, informative])
    cfg = ElmoChapterConfig(head_steps=300, head_hidden=16)
    acc, weights = elmo_tasks.train_head(x[:, :400], y[:400], x[:, 400:], y[400:], cfg)
    assert acc > 0.95 and weights[1] > weights[0]
    acc_noise, _ = elmo_tasks.train_head(x[:, :400], y[:400], x[:, 400:], y[400:], cfg, layer=0)
    assert acc_noise < 0.6


def test_noun_verb_occurrences_and_agreement():
    sentences = [["I", "saw", "the", "play"], ["we", "like", "to", "play"], ["a", "play", "to", "play"], ["play", "now"]]
    occ = elmo_probes.noun_verb_occurrences(sentences, "play")
    assert [(i, label) for _, i, label in occ] == [(3, "noun"), (3, "verb"), (1, "noun"), (3, "verb")]
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    labels = np.array(["noun", "verb", "noun", "verb"])
    assert elmo_probes.nearest_neighbour_agreement(vectors, labels) == 1.0
    assert elmo_probes.nearest_neighbour_agreement(vectors, np.array(["noun", "noun", "verb", "verb"])) == 0.0
