"""What the tests of chapter 5's protocol and of seeding share: a toy tokenizer with ``</s>`` and
sentinels (as :func:`tlcourse.chapters.ch05_t5.sentinel_tokenizer` makes chapter 4's), a one-layer T5
size with dropout on (so training draws random numbers), and toy task rows."""
import pytest

from tlcourse import wordpiece
from tlcourse.chapters.ch05_t5 import TinyT5Config

TEXTS = ["a fine film with a fine cast", "a dull film with a dull plot", "the film was fine",
         "the plot was dull", "a film and a plot"] * 20
TINY = TinyT5Config(d_model=16, layers=1, heads=2, d_ff=32, dropout=0.1)


@pytest.fixture(scope="module")
def t5_tokenizer():
    tok = wordpiece.train_wordpiece(TEXTS + ["sst2 sentence: rte sentence1: sentence2: positive negative "
                                             "entailment not_entailment"], vocab_size=150, min_frequency=1)
    tok.add_special_tokens({"eos_token": "</s>", "additional_special_tokens": [f"<extra_id_{i}>" for i in range(8)]})
    return tok


def sst2_rows(n):
    """Learnable: "fine" is positive (1), "dull" negative (0)."""
    return [{"sentence": f"a {'fine' if i % 2 else 'dull'} film", "label": i % 2} for i in range(n)]


def rte_rows(n):
    """A constant task: every pair is labelled "entailment" (0)."""
    return [{"sentence1": "the film was fine", "sentence2": "a film", "label": 0} for _ in range(n)]
