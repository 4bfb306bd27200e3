"""tlcourse.t5 (chapter 5): text-to-text formatting, span corruption against the paper's arithmetic,
and the mixing rates and sampler."""
import math

import numpy as np
import pytest
import torch

from tlcourse import t5

SENTINELS = list(range(1000, 1100))


def _spans(mask):
    m = mask.int().tolist()
    return sum(1 for i, v in enumerate(m) if v and (i == 0 or not m[i - 1]))


def test_paper_lengths():
    # T5 packs 568 tokens so that the corrupted inputs are 512 long and the targets 114 (random_spans_helper).
    assert t5.expected_lengths(568) == (512, 114)
    assert t5.span_lengths(100) == (15, 5, 85)


def test_noise_fraction_and_span_count_on_long_sequences():
    for length, seed in [(10_000, 0), (4_321, 1)]:
        mask = t5.noise_mask(length, torch.Generator().manual_seed(seed))
        noise, spans, _ = t5.span_lengths(length)
        assert len(mask) == length and mask.sum().item() == noise == round(0.15 * length)
        assert _spans(mask) == spans == round(noise / 3) and not mask[0]
        run_lengths = np.diff(np.flatnonzero(np.diff(np.r_[0, mask.int().numpy(), 0])))[::2]
        assert abs(run_lengths.mean() - 3.0) < 0.05 and run_lengths.std() > 1.0  # random boundaries, not fixed 3s


def test_boundaries_are_random():
    a = t5.noise_mask(200, torch.Generator().manual_seed(0))
    b = t5.noise_mask(200, torch.Generator().manual_seed(1))
    assert not torch.equal(a, b) and a.sum() == b.sum()


@pytest.mark.parametrize("length", [2, 3, 7, 20, 64, 511])
def test_span_corruption_round_trip_sentinel_order_and_lengths(length):
    g = torch.Generator().manual_seed(length)
    ids = torch.randint(0, 900, (length,), generator=g).tolist()
    inputs, targets = t5.span_corrupt(ids, SENTINELS, g, eos=1)
    assert t5.reconstruct(inputs, targets, SENTINELS, eos=1) == ids
    assert (len(inputs), len(targets)) == t5.expected_lengths(length)
    used_in = [t for t in inputs if t in SENTINELS]
    used_out = [t for t in targets if t in SENTINELS]
    assert used_in == used_out == SENTINELS[: len(used_in)] and targets[0] == SENTINELS[0]


def test_span_corruption_errors():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        t5.span_corrupt([5], SENTINELS, torch.Generator())
    with pytest.raises(ValueError, match="sentinel"):
        t5.span_corrupt(list(range(1000)), SENTINELS[:3], torch.Generator())


def test_formatters_round_trip_and_invalid():
    rows = [{"sentence1": "A dog ran.", "sentence2": "An animal moved.", "label": 0},
            {"sentence1": "No weapons were found.", "sentence2": "Weapons were found.", "label": 1}]
    inputs, targets = t5.to_text("rte", rows)
    assert inputs[1] == "rte sentence1: No weapons were found. sentence2: Weapons were found."
    assert targets == ["entailment", "not_entailment"]
    assert [t5.parse_label("rte", t) for t in targets] == [0, 1]
    assert t5.to_text("sst2", [{"sentence": "great fun", "label": 1}]) == (["sst2 sentence: great fun"], ["positive"])
    assert t5.parse_label("ag_news", " Sports ") == 1
    assert t5.parse_label("sst2", "positive!") == t5.INVALID == t5.parse_label("sst2", "")
    with pytest.raises(ValueError, match="unknown task"):
        t5.to_text("mnli", rows)
    with pytest.raises(ValueError, match="lack the column"):
        t5.to_text("sst2", rows)


SIZES = {"sst2": 67_349, "rte": 2_490, "ag_news": 10_001}


def test_mixing_rates_match_the_formulas():
    total = sum(SIZES.values())
    prop = t5.mixing_rates(SIZES)
    assert all(abs(prop[k] - SIZES[k] / total) < 1e-9 for k in SIZES)
    capped = t5.mixing_rates(SIZES, cap=5_000)
    assert abs(capped["rte"] - 2_490 / 12_490) < 1e-9 and abs(capped["sst2"] - 5_000 / 12_490) < 1e-9
    hot = t5.mixing_rates(SIZES, "temperature", temperature=2.0)
    norm = sum(math.sqrt(n / total) for n in SIZES.values())
    assert all(abs(hot[k] - math.sqrt(SIZES[k] / total) / norm) < 1e-9 for k in SIZES)
    assert all(abs(t5.mixing_rates(SIZES, "temperature", temperature=1.0)[k] - prop[k]) < 1e-9 for k in SIZES)
    assert all(abs(t5.mixing_rates(SIZES, "temperature", temperature=1e6)[k] - 1 / 3) < 1e-4 for k in SIZES)
    assert t5.mixing_rates(SIZES, "equal") == {k: 1 / 3 for k in SIZES}
    for rates in (prop, capped, hot):
        assert abs(sum(rates.values()) - 1) < 1e-9
    assert hot["rte"] > prop["rte"]  # a temperature lifts the low-resource task
    with pytest.raises(ValueError, match="unknown strategy"):
        t5.mixing_rates(SIZES, "uniform")


def test_sampler_frequencies_match_the_rates():
    rates = t5.mixing_rates(SIZES, "temperature", cap=20_000, temperature=2.0)
    sampler = t5.MixtureSampler(SIZES, rates, seed=0)
    pairs = [p for _ in range(200) for p in sampler.batch(500)]
    names = list(SIZES)
    got = t5.empirical_rates(pairs, names)
    want = np.array([rates[n] for n in names])
    sd = np.sqrt(want * (1 - want) / len(pairs))
    assert np.all(np.abs(got - want) < 4 * sd), (got, want)
    assert all(0 <= i < SIZES[name] for name, i in pairs)
    assert t5.MixtureSampler(SIZES, rates, seed=0).batch(50) == t5.MixtureSampler(SIZES, rates, seed=0).batch(50)


@pytest.fixture(scope="module")
def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    from tlcourse import wordpiece

    texts = ["sst2 sentence: a fine film", "sst2 sentence: a dull film", "positive negative entailment"] * 20
    tok = wordpiece.train_wordpiece(texts, vocab_size=120, min_frequency=1)
    tok.eos_token = "[SEP]"
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
    return T5ForConditionalGeneration(cfg).eval(), tok


def test_rank_classification_matches_scoring_each_label_alone(tiny_t5):
    model, tok = tiny_t5
    inputs = ["sst2 sentence: a fine film", "sst2 sentence: dull", "sst2 sentence: a film a film a film"]
    got = t5.rank_classify(model, tok, inputs, "sst2", batch=2)
    want = []
    for text in inputs:
        enc = tok(text, return_tensors="pt")
        loglik = []
        for label in t5.task("sst2").labels:
            y = t5.encode_targets(tok, [label])
            with torch.no_grad():
                loglik.append(-model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=y).loss.item()
                              * y.shape[1])
        want.append(int(np.argmax(loglik)))
    assert got.tolist() == want


def test_generation_is_parsed_and_invalid_counted(tiny_t5):
    model, tok = tiny_t5
    predictions, texts = t5.generate_labels(model, tok, ["sst2 sentence: a fine film"] * 3, "sst2", max_new_tokens=3)
    assert len(texts) == 3 and predictions.tolist() == [t5.parse_label("sst2", t) for t in texts]
    s = t5.scores(torch.tensor([0, 1, t5.INVALID, 1]), [0, 0, 1, 1])
    assert s == {"accuracy": 0.5, "invalid": 0.25}
