"""Chapter 9's protocol pieces that need no data: the old head is put back after a source
evaluation, the distance counts the body only, and an unknown strategy is a clear error."""
import dataclasses

import pytest
import torch
from transformers import BertConfig, BertModel

from tlcourse.chapters import ch09_finetuning as ch
from tlcourse.finetune import MeanPoolClassifier


def _model(labels=2, seed=0):
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    torch.manual_seed(seed)
    return MeanPoolClassifier(BertModel(config, add_pooling_layer=False), labels).eval()


def _data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 40, (n, 6), generator=g),
        "attention_mask": torch.ones(n, 6, dtype=torch.long),
        "labels": torch.randint(0, 2, (n,), generator=g),
    }


def test_source_accuracy_reads_with_the_old_head_and_puts_the_new_one_back():
    model, data = _model(4), _data()
    source = _model(2, seed=1)
    target_head = model.classifier
    acc = ch.source_accuracy(model, source.classifier, data)
    assert model.classifier is target_head
    with torch.no_grad():
        features = model.encoder(input_ids=data["input_ids"], attention_mask=data["attention_mask"])
        pooled = features.last_hidden_state.mean(1)
        want = (source.classifier(pooled).argmax(-1) == data["labels"]).float().mean().item()
    assert acc == pytest.approx(want)


def test_distance_counts_the_body_and_not_the_head():
    model = _model()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        model.classifier.weight.add_(10.0)
        model.encoder.encoder.layer[0].output.dense.bias.add_(torch.full((16,), 0.5))
    assert ch.distance(model, start) == pytest.approx(0.5 * 16**0.5)


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValueError, match="full fine-tuning"):
        ch.run_strategy("everything", _model(), _data(), _data(), _data(), ch.CONFIGS["cpu"], 0)


def test_drop_vowels_keeps_short_words_and_first_letters():
    assert ch.drop_vowels("this movie is a great deal of fun") == "ths mv is a grt dl of fun"
    assert ch.drop_vowels("aeiou item") == "a itm"  # the first letter stays, vowel or not


def test_unknown_shift_and_block_are_clear_errors():
    with pytest.raises(ValueError, match="no vowels"):
        ch.shifted_sst2(ch.CONFIGS["cpu"], None, "typos", 8, 0)
    cfg = dataclasses.replace(ch.CONFIGS["cpu"], surgical_blocks=("embeddings", "layer 9"))
    with pytest.raises(ValueError, match=r"unknown \['layer 9'\]"):
        ch.surgical_runs(cfg, None, _model())


def test_profiles_name_known_strategies_and_blocks():
    for cfg in ch.CONFIGS.values():
        assert set(cfg.strategies) <= set(ch.STRATEGIES)
        assert {"embeddings", "head"} <= set(cfg.surgical_blocks or ("embeddings", "head"))
