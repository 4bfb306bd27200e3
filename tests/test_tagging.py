"""tlcourse.tagging: labels on the first WordPiece of each word only, and a tagger that learns a toy
task while a frozen body stays fixed."""
import numpy as np
import torch
from toy_bert import SMALL, tokenizer, toy_split, ud  # noqa: F401 (tokenizer: a fixture)

from tlcourse import data, finetune, tagging

TAG = {t: i for i, t in enumerate(data.UPOS_TAGS)}


def test_encode_tags_labels_the_first_piece_of_each_word_only(tokenizer):
    sentences = [["the", "whiteness", "queen", "ran"], ["alice", "went"]]
    enc = tagging.encode_tags(tokenizer, ud(sentences), max_len=12)
    assert len(tokenizer.tokenize("whiteness")) > 1  # a word of several pieces
    for i, words in enumerate(sentences):
        word_ids = tokenizer(words, is_split_into_words=True).word_ids()
        firsts = [p for p, w in enumerate(word_ids) if w is not None and (p == 0 or word_ids[p - 1] != w)]
        labels = enc["labels"][i]
        assert (labels != -100).nonzero().flatten().tolist() == firsts
        assert labels[firsts].tolist() == [TAG[t] for t in ud([words])["upos"][0]]
    assert enc["input_ids"].shape == (2, 12) and (enc["labels"][enc["attention_mask"] == 0] == -100).all()
    cut = tagging.encode_tags(tokenizer, ud([["the", "queen", "ran"] * 5]), max_len=8)  # 15 words, 6 fit
    assert int((cut["labels"] != -100).sum()) == 6


def test_a_tagger_learns_a_toy_task_and_a_frozen_body_stays_fixed(tokenizer):
    train, test = (tagging.encode_tags(tokenizer, toy_split(n, s), 16) for n, s in ((200, 0), (100, 1)))
    cfg = finetune.FinetuneConfig(min_steps=150, max_steps=150, batch=16, lr=3e-3, max_len=16)
    torch.manual_seed(0)
    model = tagging.tagger(SMALL, len(tokenizer))
    assert model.classifier.out_features == len(data.UPOS_TAGS)
    history = tagging.train_tagger(model, train, cfg, seed=0)
    assert tagging.tag_accuracy(model, test) >= 0.95 and np.mean(history.loss[-10:]) < 0.2 * history.loss[0]

    pretrained = torch.nn.Module()
    pretrained.bert = model.bert  # a body with the tagger's size, as a BertForMaskedLM carries it
    frozen = tagging.tagger(SMALL, len(tokenizer), body=pretrained)
    assert all(torch.equal(a, b) for a, b in zip(frozen.bert.parameters(), model.bert.parameters()))
    frozen.bert.requires_grad_(False)
    body = {k: v.clone() for k, v in frozen.bert.state_dict().items()}
    head = frozen.classifier.weight.detach().clone()
    tagging.train_tagger(frozen, train, finetune.FinetuneConfig(min_steps=5, max_steps=5, batch=8, max_len=16))
    assert all(torch.equal(v, frozen.bert.state_dict()[k]) for k, v in body.items())
    assert not torch.equal(head, frozen.classifier.weight)
