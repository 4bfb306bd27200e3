"""What the tests of chapter 4's methods share (test_tagging, test_finetune, test_ch04_bert): a toy
corpus, its WordPiece tokenizer (a fixture), a one-layer BERT size and a UD-like tagging set; and a
one-layer stand-in for MiniLM (test_ch06_peft, test_seeding)."""
import datasets
import numpy as np
import pytest

from tlcourse import finetune, mlm, wordpiece

TEXTS = ["the queen of hearts made some tarts", "alice was beginning to get very tired",
         "the white rabbit ran past with a watch", "down the rabbit hole went alice"] * 50
SMALL = mlm.TinyBertConfig(hidden=32, layers=1, heads=2, intermediate=64, max_len=16)


@pytest.fixture(scope="module")
def tokenizer():
    return wordpiece.train_wordpiece(TEXTS, vocab_size=200, min_frequency=1)


def ud(sentences):
    """A UD-like dataset: each word's tag is a function of the word (NOUN, VERB, DET or ADJ)."""
    tags = {"the": "DET", "a": "DET", "queen": "NOUN", "rabbit": "NOUN", "watch": "NOUN", "alice": "PROPN",
            "ran": "VERB", "made": "VERB", "went": "VERB", "white": "ADJ", "tired": "ADJ", "whiteness": "NOUN"}
    return datasets.Dataset.from_dict({"tokens": sentences, "upos": [[tags[w] for w in s] for s in sentences]})


def toy_split(n, seed):
    """``n`` random sentences of 3 to 7 of the toy words, tagged by :func:`ud`."""
    rng = np.random.default_rng(seed)
    words = ["the", "a", "queen", "rabbit", "watch", "alice", "ran", "made", "went", "white", "tired"]
    return ud([list(rng.choice(words, size=rng.integers(3, 8))) for _ in range(n)])


def tiny_minilm(num_labels=2):
    """:func:`tlcourse.finetune.minilm_classifier` in miniature: a mean-pooling head on a one-layer
    BERT of :data:`SMALL`'s size (the toy tokenizer's 200 pieces; no download, seconds to train)."""
    from transformers import BertModel

    return finetune.MeanPoolClassifier(BertModel(SMALL.bert_config(200), add_pooling_layer=False), num_labels)
