"""Chapter 3: vocabulary and perplexities (tlcourse.chapters.ch03_elmo), batches (tlcourse.elmo), heads
(tlcourse.probes), words in context."""
import math

import numpy as np
import pytest
import torch

from tlcourse import elmo, probes
from tlcourse.chapters import ch03_elmo as ch


def test_vocab_and_batches():
    sentences = [["The", "cat"], ["the", "cat", "sat"], ["The", "dog"]]
    itos = ch.word_vocab(sentences, min_count=2)
    assert itos == ["<unk>", "<s>", "</s>", "The", "cat"]
    chars, words, lengths = elmo.make_batch(sentences, {w: i for i, w in enumerate(itos)}, max_chars=8)
    assert chars.shape == (3, 5, 8) and lengths.tolist() == [4, 5, 4]
    assert words[1].tolist() == [1, 0, 4, 0, 2]  # <s> the(unk) cat sat(unk) </s>


def test_unigram_perplexity_by_hand():
    itos = ["<unk>", "<s>", "</s>", "a", "b"]
    train = [["a", "a", "b"]]
    # add-one counts over the vocabulary: unk 1, <s> 1, </s> 2, a 3, b 2 -> total 9
    held = [["a"]]
    expected = math.exp(-(math.log(3 / 9) + math.log(2 / 9)) / 2)
    assert ch.unigram_perplexity(train, held, itos) == pytest.approx(expected)


def test_train_head_learns_separable_features_and_prefers_the_informative_layer():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    informative = torch.nn.functional.one_hot(y, 3).float() * 3 + 0.3 * torch.randn(600, 3, generator=g)
    noise = torch.randn(600, 3, generator=g)
    x = torch.stack([noise, informative])
    cfg = probes.HeadConfig(steps=300, hidden=16)
    acc, weights = probes.train_head(x[:, :400], y[:400], x[:, 400:], y[400:], cfg)
    assert acc > 0.95 and weights[1] > weights[0]
    acc_noise, _ = probes.train_head(x[:, :400], y[:400], x[:, 400:], y[400:], cfg, layer=0)
    assert acc_noise < 0.6


def _toy_ud():
    split = {"tokens": [["I", "saw", "the", "Play"], ["we", "play", "well"], ["Work", "and", "work"]],
             "upos": [["PRON", "VERB", "DET", "NOUN"], ["PRON", "VERB", "ADV"], ["NOUN", "CCONJ", "VERB"]]}
    return {"train": split, "validation": {"tokens": [["play", "it"]], "upos": [["VERB", "PRON"]]}}


def test_noun_verb_occurrences_use_the_gold_tags_and_agreement():
    ud = _toy_ud()
    occ = ch.noun_verb_occurrences(ud, "play")
    assert [(s[i], i, tag) for s, i, tag in occ] == [("Play", 3, "NOUN"), ("play", 1, "VERB"), ("play", 0, "VERB")]
    assert ch.ambiguous_words(ud, n=5, min_each=1) == ["play", "work"]  # saw: VERB only
    assert ch.ambiguous_words(ud, n=5, min_each=2) == []
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    labels = np.array(["noun", "verb", "noun", "verb"])
    assert ch.nearest_neighbour_agreement(vectors, labels) == 1.0
    assert ch.nearest_neighbour_agreement(vectors, np.array(["noun", "noun", "verb", "verb"])) == 0.0


def test_most_frequent_tag_and_known_words():
    words = ["the", "work", "work", "work", "run"]
    tags = torch.tensor([0, 1, 2, 2, 2])
    assert probes.most_frequent_tag(words, tags, ["work", "the", "unseen"]).tolist() == [2, 0, 2]
    assert ch.known_words([["The", "cat"], ["dog"]], {"the": 0, "dog": 1}).tolist() == [True, False, True]


def test_fit_head_with_extra_inputs_uses_them():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    noise = torch.randn(1, 600, 4, generator=g)  # the layers carry nothing
    extra = torch.nn.functional.one_hot(y, 3).float() * 3 + 0.3 * torch.randn(600, 3, generator=g)
    cfg = probes.HeadConfig(steps=300, hidden=16)
    predict, _ = probes.fit_head(noise[:, :400], y[:400], cfg, extra=extra[:400])
    assert (predict(noise[:, 400:], extra[400:]) == y[400:]).float().mean() > 0.95
    with pytest.raises(ValueError, match="extra"):
        predict(noise[:, 400:])
    without, _ = probes.fit_head(noise[:, :400], y[:400], cfg)
    assert (without(noise[:, 400:]) == y[400:]).float().mean() < 0.6


def test_few_label_tagging_rows_and_budgets():
    torch.manual_seed(0)
    sentences = [["a", "b"], ["b", "c", "a"], ["c", "c"], ["a", "c"]]
    y = torch.tensor([0, 1, 1, 2, 0, 2, 2, 0, 2])  # a=0, b=1, c=2; tag 2 is the commonest
    task = probes.ProbeTask("toy", sentences, [["a", "b", "c", "z"]], y, torch.tensor([0, 1, 2, 2]), True)
    elmo_x, elmo_test = torch.randn(3, 9, 4), torch.randn(3, 4, 4)
    static_x, static_test = torch.randn(1, 9, 2), torch.randn(1, 4, 2)
    known = torch.tensor([True, True, True, False])
    cfg = ch.ElmoChapterConfig(upos_budgets=(1, 4), upos_seeds=2, head=probes.HeadConfig(steps=5, hidden=4))
    runs, weights = ch.few_label_tagging(task, (elmo_x, elmo_test), (static_x, static_test), known, cfg, progress=False)
    assert len(runs) == 2 * 2 * 4 and set(weights) == {1, 4} and weights[4].shape == (3,)
    full = runs[(runs.budget == 4) & (runs.tagger == "most frequent tag")]
    # all sentences: a->0, b->1, c->2; the unseen "z" gets the commonest tag (2): all four right
    assert (full["all words"] == 1.0).all() and (full["without one"] == 1.0).all()


def test_layer_features_strip_the_boundary_marks():
    torch.manual_seed(0)
    model = elmo.BiLM(10, elmo.BiLMConfig(dim=8, filters=((1, 4), (2, 4)), cutoffs=(4,)))
    sentences = [["a", "b", "c"], ["d"]]
    feats = elmo.layer_features(model, sentences, batch=1)
    assert [f.shape for f in feats] == [(3, 3, 16), (3, 1, 16)]
    chars, _, lengths = elmo.make_batch(sentences, None, model.cfg.max_chars)
    with torch.no_grad():
        layers = model.layers(chars, lengths)
    assert torch.allclose(feats[0], layers[:, 0, 1:4], atol=1e-6)  # <s> a b c </s>: tokens 1..3


def test_standardize_uses_the_training_statistics():
    x = torch.randn(2, 50, 3) * 4 + 7
    scale = probes.Standardize(x)
    z = scale(x)
    assert torch.allclose(z.mean(1), torch.zeros(2, 3), atol=1e-5) and torch.allclose(z.std(1), torch.ones(2, 3), atol=1e-4)
    assert torch.allclose(scale(x[:, :5]), z[:, :5])


def test_pretrain_bilm_trains_its_steps_lowers_perplexity_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    words = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "log", "."]
    # a learnable language: every sentence is "the <animal> <verb> on a <thing> ."
    train = [["the", words[rng.integers(1, 3)], words[rng.integers(3, 5)], "on", "a",
              words[rng.integers(7, 9)], "."] for _ in range(64)]
    itos = ch.word_vocab(train, min_count=1)
    cfg = ch.ElmoChapterConfig(bilm=elmo.BiLMConfig(dim=16, max_chars=8, filters=((1, 8), (2, 8)), cutoffs=(6,)),
                               pretrain_steps=40, pretrain_batch=16, pretrain_lr=1e-2)
    stoi = {w: i for i, w in enumerate(itos)}
    torch.manual_seed(0)
    before = ch.perplexity(elmo.BiLM(len(itos), cfg.bilm), train[:16], stoi)
    model, meta = ch.pretrain_bilm(train, itos, cfg, progress=False)
    assert len(meta["loss"]) == 40 and meta["epochs"] == pytest.approx(40 * 16 / 64) and not model.training
    after = ch.perplexity(model, train[:16], stoi)
    assert all(a < b / 2 for a, b in zip(after, before)), (before, after)  # both directions learned
    again, meta2 = ch.pretrain_bilm(train, itos, cfg, progress=False)  # from the artefact cache
    assert [list(pair) for pair in meta2["loss"]] == [list(pair) for pair in meta["loss"]]
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
