"""tlcourse.chapters.ch04_bert: tagging labels on first WordPieces, the tagger's training (a frozen
body stays fixed), paired comparisons, the mean-pooling head, pair truncation, the head's learning
rate, and the freeze_body self-check against planted mistakes."""
import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from tlcourse import checks, data, finetune, mlm, wordpiece
from tlcourse.chapters import ch04_bert as ch

TEXTS = ["the queen of hearts made some tarts", "alice was beginning to get very tired",
         "the white rabbit ran past with a watch", "down the rabbit hole went alice"] * 50
SMALL = mlm.TinyBertConfig(hidden=32, layers=1, heads=2, intermediate=64, max_len=16)
TAG = {t: i for i, t in enumerate(data.UPOS_TAGS)}


@pytest.fixture(scope="module")
def tokenizer():
    return wordpiece.train_wordpiece(TEXTS, vocab_size=200, min_frequency=1)


def _ud(sentences):
    """A UD-like dataset: each word's tag is a function of the word (NOUN, VERB, DET or ADJ)."""
    tags = {"the": "DET", "a": "DET", "queen": "NOUN", "rabbit": "NOUN", "watch": "NOUN", "alice": "PROPN",
            "ran": "VERB", "made": "VERB", "went": "VERB", "white": "ADJ", "tired": "ADJ", "whiteness": "NOUN"}
    return datasets.Dataset.from_dict({"tokens": sentences, "upos": [[tags[w] for w in s] for s in sentences]})


def test_encode_tags_labels_the_first_piece_of_each_word_only(tokenizer):
    sentences = [["the", "whiteness", "queen", "ran"], ["alice", "went"]]
    enc = ch.encode_tags(tokenizer, _ud(sentences), max_len=12)
    assert len(tokenizer.tokenize("whiteness")) > 1  # a word of several pieces
    for i, words in enumerate(sentences):
        word_ids = tokenizer(words, is_split_into_words=True).word_ids()
        firsts = [p for p, w in enumerate(word_ids) if w is not None and (p == 0 or word_ids[p - 1] != w)]
        labels = enc["labels"][i]
        assert (labels != -100).nonzero().flatten().tolist() == firsts
        assert labels[firsts].tolist() == [TAG[t] for t in _ud([words])["upos"][0]]
    assert enc["input_ids"].shape == (2, 12) and (enc["labels"][enc["attention_mask"] == 0] == -100).all()
    cut = ch.encode_tags(tokenizer, _ud([["the", "queen", "ran"] * 5]), max_len=8)  # 15 words, 6 fit
    assert int((cut["labels"] != -100).sum()) == 6


def _toy_split(n, seed):
    rng = np.random.default_rng(seed)
    words = ["the", "a", "queen", "rabbit", "watch", "alice", "ran", "made", "went", "white", "tired"]
    return _ud([list(rng.choice(words, size=rng.integers(3, 8))) for _ in range(n)])


def test_a_tagger_learns_a_toy_task_and_a_frozen_body_stays_fixed(tokenizer):
    train, test = (ch.encode_tags(tokenizer, _toy_split(n, s), 16) for n, s in ((200, 0), (100, 1)))
    cfg = finetune.FinetuneConfig(min_steps=150, max_steps=150, batch=16, lr=3e-3, max_len=16)
    torch.manual_seed(0)
    model = ch.tagger(SMALL, len(tokenizer))
    assert model.classifier.out_features == len(data.UPOS_TAGS)
    history = ch.train_tagger(model, train, cfg, seed=0)
    assert ch.tag_accuracy(model, test) >= 0.95 and np.mean(history.loss[-10:]) < 0.2 * history.loss[0]

    pretrained = torch.nn.Module()
    pretrained.bert = model.bert  # a body with the tagger's size, as a BertForMaskedLM carries it
    frozen = ch.tagger(SMALL, len(tokenizer), body=pretrained)
    assert all(torch.equal(a, b) for a, b in zip(frozen.bert.parameters(), model.bert.parameters()))
    frozen.bert.requires_grad_(False)
    body = {k: v.clone() for k, v in frozen.bert.state_dict().items()}
    head = frozen.classifier.weight.detach().clone()
    ch.train_tagger(frozen, train, finetune.FinetuneConfig(min_steps=5, max_steps=5, batch=8, max_len=16))
    assert all(torch.equal(v, frozen.bert.state_dict()[k]) for k, v in body.items())
    assert not torch.equal(head, frozen.classifier.weight)


def test_tagging_runs_give_every_start_the_same_sentences_and_seed(tokenizer):
    cfg = ch.BertChapterConfig(bert=SMALL, tag_budgets=(20, 40), tag_seeds=2, tag_test=30,
                               tagger=finetune.FinetuneConfig(min_steps=8, max_steps=8, batch=8, max_len=16))
    build = lambda: ch.tagger(SMALL, len(tokenizer))  # noqa: E731
    runs = ch.tagging_runs({"a": build, "b": build}, tokenizer, _toy_split(60, 0), _toy_split(50, 1), cfg,
                           progress=False)
    assert len(runs) == 2 * 2 * 2 and set(runs.columns) >= {"start", "sentences", "seed", "accuracy", "steps"}
    wide = runs.pivot_table(index=["sentences", "seed"], columns="start", values="accuracy")
    assert (wide["a"] == wide["b"]).all()  # same sentences, init and batches: the same run
    assert wide["a"].nunique() > 1  # ... and different ones across seeds and budgets


def test_paired_effect_is_the_mean_and_standard_error_of_per_seed_differences():
    runs = pd.DataFrame({"start": ["x"] * 3 + ["y"] * 3, "sentences": [50] * 6, "seed": [0, 1, 2] * 2,
                         "accuracy": [0.60, 0.62, 0.70, 0.55, 0.58, 0.64]})
    row = ch.paired_effect(runs, "x", "y").loc[50]
    d = np.array([0.05, 0.04, 0.06])
    assert row["difference"] == pytest.approx(d.mean())
    assert row["SE"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert row["z"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(3)))
    assert row["x"] == pytest.approx(0.64) and row["seeds"] == 3


def test_mean_pool_head_reads_the_mean_of_real_tokens(tokenizer):
    from transformers import BertModel

    torch.manual_seed(0)
    model = ch.MeanPoolClassifier(BertModel(SMALL.bert_config(len(tokenizer))), num_labels=3).eval()
    short = tokenizer(["alice was tired"], return_tensors="pt")
    padded = tokenizer(["alice was tired"], padding="max_length", max_length=12, return_tensors="pt")
    with torch.no_grad():
        logits = model(**short).logits
        hidden = model.encoder(**short).last_hidden_state
        assert torch.allclose(logits, model.classifier(hidden.mean(1)), atol=1e-5)
        assert torch.allclose(model(**padded).logits, logits, atol=1e-5)  # padding is not averaged in


def test_pairs_truncate_the_first_text_only(tokenizer):
    pairs = datasets.Dataset.from_dict({"sentence1": [" ".join(TEXTS[:6])], "sentence2": ["alice was very tired"],
                                        "label": [0]})
    enc = finetune.encode(tokenizer, pairs, ("sentence1", "sentence2"), 16, truncation="only_first")
    second = len(tokenizer("alice was very tired", add_special_tokens=False)["input_ids"])
    assert enc["attention_mask"].sum() == 16 and enc["token_type_ids"].sum() == second + 1  # + its [SEP]


def test_a_fresh_head_trains_at_its_own_learning_rate(tokenizer):
    from transformers import BertForSequenceClassification

    train = finetune.encode(tokenizer, datasets.Dataset.from_dict({"sentence": TEXTS[:32], "label": [0, 1] * 16}),
                            ["sentence"], 12)
    torch.manual_seed(0)
    model = BertForSequenceClassification(SMALL.bert_config(len(tokenizer)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = finetune.FinetuneConfig(min_steps=3, max_steps=3, batch=8, lr=1e-9, head_lr_scale=1e7, max_len=12)
    finetune.finetune_classifier(model, train, train, cfg)
    moved = {k: float((v - before[k]).abs().max()) for k, v in model.state_dict().items()}
    assert moved["classifier.weight"] > 1e-3
    assert max(v for k, v in moved.items() if not k.startswith("classifier.")) < 1e-6


# ---- the self-check of exercise 4.4 -----------------------------------------------------------

def _freeze_reference(model):
    for p in model.bert.parameters():
        p.requires_grad_(False)
    return model


def _attribute_only(model):
    model.bert.requires_grad = False  # a plain attribute: nothing is frozen
    return model


def _reinitialised(model):
    model.bert.apply(model._init_weights)
    return _freeze_reference(model)


PLANTED_FREEZE = {
    "nothing frozen (eval mode instead)": lambda m: m.eval(),
    "requires_grad set as a module attribute": _attribute_only,
    "layers frozen, embeddings still train": lambda m: (m.bert.encoder.requires_grad_(False), m)[1],
    "head frozen too": lambda m: m.requires_grad_(False),
    "the head frozen, not the body": lambda m: (m.classifier.requires_grad_(False), m)[1],
    "returns nothing": lambda m: (_freeze_reference(m), None)[1],
    "re-initialises the body": _reinitialised,
}


def test_freeze_body_check_catches_planted_mistakes(capsys):
    assert checks.bert.freeze_body(_freeze_reference)
    stub = checks.bert.freeze_body(lambda m: (_ for _ in ()).throw(NotImplementedError("Exercise 4.4")))
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not checks.bert.freeze_body(fn) for name, fn in PLANTED_FREEZE.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out
