"""tlcourse.t5 (chapter 5): text-to-text formatting, span corruption against the paper's arithmetic,
and the mixing rates and sampler."""
import math

import numpy as np
import pytest
import torch

from tlcourse import t5
from tlcourse.train import parameter_counts

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
    cfg = T5Config(vocab_size=len(tok), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, dropout_rate=0.0,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
    return T5ForConditionalGeneration(cfg).eval(), tok


def _split(tok, texts, name="sst2", labels=None):
    from tlcourse import t5_train

    ids = [torch.tensor(i) for i in tok(texts)["input_ids"]]
    labels = labels if labels is not None else [0] * len(texts)
    targets = [tok(t5.task(name).labels[y], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for y in labels]
    return t5_train.TextSplit(name, ids, targets, torch.tensor(labels))


def test_rank_classification_matches_scoring_each_label_alone(tiny_t5):
    from tlcourse import t5_train

    model, tok = tiny_t5
    inputs = ["sst2 sentence: a fine film", "sst2 sentence: dull", "sst2 sentence: a film a film a film"]
    got = t5_train.label_logliks(model, tok, _split(tok, inputs), batch=2)
    for row, text in zip(got, inputs):
        enc = tok(text, return_tensors="pt")
        for c, label in enumerate(t5.task("sst2").labels):
            y = t5.encode_targets(tok, [label])
            with torch.no_grad():
                want = -model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=y).loss.item() * y.shape[1]
            assert abs(row[c].item() - want) < 1e-4


def test_frozen_states_give_the_same_scores_as_ids(tiny_t5):
    from tlcourse import t5_train

    model, tok = tiny_t5
    texts = ["sst2 sentence: a fine film", "sst2 sentence: dull", "sst2 sentence: a film a film a film"]
    by_ids = _split(tok, texts, labels=[0, 1, 1])
    states = t5_train.encoder_states(model.get_encoder(), by_ids.inputs, tok.pad_token_id, batch=2)
    assert [s.shape[0] for s in states] == [len(i) for i in by_ids.inputs]
    by_states = t5_train.TextSplit("sst2", states, by_ids.targets, by_ids.labels)
    assert torch.allclose(t5_train.label_logliks(model, tok, by_ids), t5_train.label_logliks(model, tok, by_states), atol=1e-5)
    a, ta = t5_train.generate_labels(model, tok, by_ids, max_new_tokens=3)
    b, tb = t5_train.generate_labels(model, tok, by_states, max_new_tokens=3)
    assert ta == tb and torch.equal(a, b) and a.tolist() == [t5.parse_label("sst2", t) for t in ta]
    ev = t5_train.evaluate(model, tok, by_states)
    assert set(ev) == {"rank", "label nll", "generate", "invalid", "top answer"} and 0 <= ev["invalid"] <= 1
    answers = t5_train.label_logliks(model, tok, by_states).argmax(-1)
    assert ev["top answer"] == max((answers == c).sum().item() for c in (0, 1)) / 3
    assert t5_train.constant_answer(by_states) == 2 / 3  # two of three are label 1
    assert ev["invalid"] == pytest.approx((b == t5.INVALID).float().mean().item())   # from the generated text
    assert ev["generate"] == pytest.approx((b == by_ids.labels).float().mean().item())


def test_scores_count_invalid_as_wrong():
    s = t5.scores(torch.tensor([0, 1, t5.INVALID, 1]), [0, 0, 1, 1])
    assert s == {"accuracy": 0.5, "invalid": 0.25}
    with pytest.raises(ValueError, match="predictions"):
        t5.scores(torch.tensor([0, 1]), [0])


def test_train_mixture_loss_is_the_models_loss_and_counts_tasks(tiny_t5):
    import copy

    from tlcourse import t5_train

    model, tok = tiny_t5
    splits = {"sst2": _split(tok, ["sst2 sentence: a fine film", "sst2 sentence: dull"] * 5, labels=[1, 0] * 5),
              "rte": _split(tok, ["rte sentence1: a film sentence2: dull"] * 4, "rte", labels=[1, 0, 1, 0])}
    rates = {"sst2": 0.75, "rte": 0.25}
    cfg = t5_train.MixConfig(steps=3, batch=8, lr=0.0, warmup=0.0, seed=4)
    frozen = copy.deepcopy(model)
    history = t5_train.train_mixture(copy.deepcopy(model), splits, rates, cfg, tok.pad_token_id, progress=False)
    # the same first batch, scored by the library's own loss (lr 0: the model does not change; dropout off)
    pairs = t5.MixtureSampler({n: len(s) for n, s in splits.items()}, rates, seed=4).batch(8)
    enc = t5_train.collate([splits[n].inputs[i] for n, i in pairs], tok.pad_token_id)
    labels = t5.pad_targets([splits[n].targets[i] for n, i in pairs])
    with torch.no_grad():
        want = frozen.eval()(**enc, labels=labels).loss.item()
    assert abs(history.loss[0] - want) < 1e-5
    seen = {n: history.metrics[f"seen {n}"][0] for n in splits}
    assert sum(seen.values()) == 24 and len(history.metrics["loss rte"]) == 3
    with pytest.raises(ValueError, match="no training split"):
        t5_train.train_mixture(model, splits, {"ag_news": 1.0}, cfg, tok.pad_token_id, progress=False)


def test_train_mixture_learns_both_tasks_and_evaluate_reports_it(tiny_t5):
    import copy

    from tlcourse import t5_train

    model, tok = copy.deepcopy(tiny_t5[0]), tiny_t5[1]
    splits = {"sst2": _split(tok, ["sst2 sentence: a fine film", "sst2 sentence: a dull film"] * 4, labels=[1, 0] * 4),
              "rte": _split(tok, ["rte sentence1: a film sentence2: fine", "rte sentence1: a film sentence2: dull"] * 4,
                            "rte", labels=[0, 1] * 4)}
    before = {n: t5_train.evaluate(model, tok, sp, generate=False) for n, sp in splits.items()}
    cfg = t5_train.MixConfig(steps=300, batch=8, lr=3e-3, warmup=0.1, seed=0)
    history = t5_train.train_mixture(model, splits, {"sst2": 0.5, "rte": 0.5}, cfg, tok.pad_token_id, progress=False)
    assert np.mean(history.loss[-10:]) < np.mean(history.loss[:10]) / 2, history.loss
    for name, split in splits.items():
        ev = t5_train.evaluate(model, tok, split)
        logliks = t5_train.label_logliks(model, tok, split)
        assert ev["rank"] == (logliks.argmax(-1) == split.labels).float().mean().item() == 1.0, (name, ev)
        assert ev["label nll"] == pytest.approx(-logliks.gather(1, split.labels[:, None]).mean().item())
        assert ev["label nll"] < before[name]["label nll"] / 2, (name, before[name], ev)
        predicted, _ = t5_train.generate_labels(model, tok, split)
        assert ev["generate"] == (predicted == split.labels).float().mean().item()


def test_corrupted_batches_reconstruct():
    from tlcourse import t5_train

    rows = torch.randint(10, 90, (6, 40), generator=torch.Generator().manual_seed(0))
    batch = t5_train.corrupted_batch(rows, SENTINELS, eos=2, pad_id=0, generator=torch.Generator().manual_seed(1))
    for r, i, m, y in zip(rows, batch["input_ids"], batch["attention_mask"], batch["labels"]):
        inputs, targets = i[m.bool()].tolist(), y[y != -100].tolist()
        assert t5.reconstruct(inputs, targets, SENTINELS, eos=2) == r.tolist()
        assert (len(inputs), len(targets)) == t5.expected_lengths(40)


def test_unknown_names_are_clear_errors():
    from tlcourse.chapters import ch05_t5

    with pytest.raises(ValueError, match="unknown task"):
        t5.to_text("cola", [])
    with pytest.raises(ValueError, match="unknown model"):
        ch05_t5.warm_start(ch05_t5.T5ChapterConfig(warm="t5-base"))
    with pytest.raises(ValueError, match="lack the column"):
        t5.to_text("rte", [{"sentence": "x", "label": 0}])


def test_warm_start_from_minilm_freezes_the_encoder_and_shares_nothing_else():
    from tlcourse import t5_train
    from tlcourse.chapters import ch05_t5

    cfg = ch05_t5.T5ChapterConfig()
    model, tok = ch05_t5.warm_start(cfg)
    assert tok.eos_token == "[SEP]" and model.config.decoder_start_token_id == tok.cls_token_id
    assert model.decoder.config.num_hidden_layers == cfg.decoder_layers and model.decoder.config.add_cross_attention
    assert not any(p.requires_grad for p in model.get_encoder().parameters())
    trainable, total = parameter_counts(model)
    layers = model.decoder.bert.encoder.layer
    assert cfg.decoder_layers == len(layers) == 2
    assert trainable == sum(p.numel() for p in layers.parameters()) + sum(
        p.numel() for n, p in model.decoder.named_parameters() if p.requires_grad and ".layer." not in n)
    assert trainable < 0.25 * total
    # the warm-started decoder layers are MiniLM's first layers (cross-attention is new)
    minilm = __import__("tlcourse.hub", fromlist=["hub"]).load_model("minilm")
    for i, layer in enumerate(layers):
        assert torch.equal(layer.attention.self.query.weight, minilm.encoder.layer[i].attention.self.query.weight)
    split = t5_train.encode_split(tok, "sst2", [{"sentence": "a fine film", "label": 1}], encoder=model.get_encoder())
    assert split.inputs[0].shape == (len(tok("sst2 sentence: a fine film")["input_ids"]), 384)
    assert split.targets[0] == tok("positive", add_special_tokens=False)["input_ids"] + [tok.sep_token_id]


def test_hub_names_with_punctuation_have_valid_environment_variables(monkeypatch):
    from tlcourse import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.ModelNotFoundError, match="TLCOURSE_MODEL_T5_V1_1_SMALL"):
        hub.resolve("t5-v1_1-small")


def test_fit_sources_shortens_only_the_premise(tiny_t5):
    _, tok = tiny_t5
    rows = [{"sentence1": "a fine film " * 30, "sentence2": "a dull film", "label": 0},
            {"sentence1": "a film", "sentence2": "a fine film", "label": 1}]
    full, _ = t5.to_text("rte", rows)
    sources, cut = t5.fit_sources(tok, "rte", rows, max_len=24)
    assert cut == 1 and sources[1] == full[1] and sources[0] != full[0]
    assert all(s.endswith(f"sentence2: {r['sentence2']}") for s, r in zip(sources, rows))
    assert sources[0].startswith("rte sentence1: a fine film")
    assert max(len(i) for i in tok(sources)["input_ids"]) <= 24
    assert len(tok(sources[0])["input_ids"]) >= 22  # shortened no more than needed
    with pytest.raises(ValueError, match="raise max_len"):
        t5.fit_sources(tok, "rte", rows, max_len=5)


def test_gpu_profile_falls_back_to_minilm_when_t5_cannot_be_loaded(monkeypatch, capsys, tmp_path):
    from toy_t5 import save_toy_t5_v1_1

    from tlcourse.chapters import ch05_t5 as ch

    gpu = ch.CONFIGS["gpu"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TLCOURSE_MODEL_T5_V1_1_SMALL", raising=False)
    monkeypatch.delenv("TLCOURSE_MODELS", raising=False)
    cfg = ch.with_available_model(gpu)
    note = capsys.readouterr().out
    assert "t5-v1_1-small cannot be loaded here" in note and "TLCOURSE_MODEL_T5_V1_1_SMALL" in note
    cpu = ch.CONFIGS["cpu"]
    assert (cfg.warm, cfg.freeze_encoder, cfg.decoder_layers) == (cpu.warm, cpu.freeze_encoder, cpu.decoder_layers)
    assert cfg.warm_mix == gpu.warm_mix and cfg.train_sizes == gpu.train_sizes  # the gpu sizes stay
    assert ch.with_available_model(cpu) is cpu
    # a saved copy (here a one-layer toy of the architecture) is used, and warm_start loads it
    monkeypatch.setenv("TLCOURSE_MODEL_T5_V1_1_SMALL", str(save_toy_t5_v1_1(tmp_path)))
    assert ch.with_available_model(gpu) is gpu and capsys.readouterr().out == ""
    model, tok = ch.warm_start(gpu)
    assert type(model).__name__ == "T5ForConditionalGeneration" and tok.eos_token == "</s>"
    assert all(p.requires_grad for p in model.parameters())  # the gpu profile fine-tunes all of it
