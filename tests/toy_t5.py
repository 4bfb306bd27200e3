"""What the tests of chapter 5's protocol and of seeding share: a toy tokenizer with ``</s>`` and
sentinels (as :func:`tlcourse.chapters.ch05_t5.sentinel_tokenizer` makes chapter 4's), a one-layer T5
size with dropout on (so training draws random numbers), and toy task rows."""
import pytest
import torch

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


def save_toy_t5_v1_1(folder, texts=None):
    """A randomly initialised T5 v1.1 of one layer (gated-GELU, untied head, as
    ``google/t5-v1_1-small``) with a SentencePiece-style unigram tokenizer (``<pad>``, ``</s>``,
    ``<unk>``, 100 sentinels) trained on ``texts`` (default: RTE's training pairs), saved
    where ``TLCOURSE_MODEL_T5_V1_1_SMALL`` can point: chapter 5's gpu code path without the hub.
    Returns ``folder``."""
    import json

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

    from tlcourse import data

    if texts is None:
        rte = data.load("rte")["train"]
        texts = [*rte["sentence1"], *rte["sentence2"]]
    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.NFKC()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=4000, unk_token="<unk>",
                                                               special_tokens=["<pad>", "</s>", "<unk>"]))
    vocab = [(piece, score) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    tokenizer = T5TokenizerFast(vocab=vocab, extra_ids=100)
    config = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
