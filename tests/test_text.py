"""tlcourse.text: the tokenizer treats PTB-tokenised and raw text alike; the vocabulary."""
import pytest
import torch

from tlcourse.text import Vocab, ptb_tokenize, split_sentences, tokenize


def test_tokenize_raw_and_ptb_text_alike():
    assert tokenize("It doesn't work!!") == ["it", "does", "n't", "work", "!", "!"]
    assert tokenize("it does n't work ! !") == tokenize("It doesn't work!!")
    assert tokenize("Phone's 45-minute battery") == ["phone's", "45", "-", "minute", "battery"]
    assert tokenize("") == []


def test_vocab_min_count_order_and_encoding():
    texts = [["b", "a", "a"], ["c", "a", "b"], ["d"]]
    vocab = Vocab.build(texts, min_count=2)
    assert vocab.itos == ["<unk>", "a", "b", "<pad>"] and len(vocab) == 4 and vocab.pad_id == 3
    assert vocab.encode(["a", "zzz", "b"]) == [1, 0, 2]
    batch = vocab.encode_batch([["a", "b", "a"], [], ["b"]], max_len=2)
    assert torch.equal(batch, torch.tensor([[1, 2], [0, 3], [2, 3]]))
    assert Vocab.build(texts, max_size=1).itos == ["<unk>", "a", "<pad>"]
    with pytest.raises(ValueError, match="must start with '<unk>'"):
        Vocab(["a", "<pad>"])


def test_ptb_tokenize_splits_clitics_and_punctuation_like_the_treebank():
    assert ptb_tokenize("Don't you think it's Mr. Holmes's?") == [
        "Do", "n't", "you", "think", "it", "'s", "Mr.", "Holmes", "'s", "?"]
    # hyphenated words and decimals stay whole; curly quotes become straight; "can't" -> "ca n't"
    assert ptb_tokenize("a twenty-one-year-old paid 3.50 \u201cnow\u201d, can\u2019t") == [
        "a", "twenty-one-year-old", "paid", "3.50", '"', "now", '"', ",", "ca", "n't"]
    assert ptb_tokenize("Société") == ["Société"] and ptb_tokenize("") == []


def test_split_sentences_keeps_titles_and_initials():
    assert split_sentences('Mr. Holmes said: "Go." Then J. Smith left! Did he? yes.') == [
        'Mr. Holmes said: "Go."', "Then J. Smith left!", "Did he? yes."]
    assert split_sentences("No end here") == ["No end here"]
