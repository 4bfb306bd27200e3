"""tlcourse.chapters.ch05_t5's protocol on a toy corpus and a one-layer T5: what span_pretrained caches
and reloads, and what mixing_runs returns per run, seed and task. (The methods' tests: test_t5.py.)"""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from toy_t5 import TEXTS, TINY, rte_rows, sst2_rows, t5_tokenizer  # noqa: F401 (t5_tokenizer: a fixture)

from tlcourse import t5, t5_train
from tlcourse.chapters import ch05_t5 as ch
from tlcourse.train import parameter_counts

CFG = ch.T5ChapterConfig(tiny=TINY, span_len=16, span=t5_train.MixConfig(steps=40, batch=8, lr=3e-3, seed=0))


def test_span_pretrained_trains_its_steps_lowers_the_loss_and_reloads_the_same_model(t5_tokenizer, tmp_path,  # noqa: F811
                                                                                   monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    before = torch.get_rng_state()
    model, meta = ch.span_pretrained(CFG, t5_tokenizer, TEXTS, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    rows = len(ch.corpus_rows(t5_tokenizer, TEXTS, CFG.span_len))
    assert set(meta) >= {"seconds", "loss", "rows", "epochs"} and meta["rows"] == rows > 0
    assert len(meta["loss"]) == CFG.span.steps and meta["epochs"] == CFG.span.steps * CFG.span.batch / rows
    assert np.mean(meta["loss"][-5:]) < 0.8 * np.mean(meta["loss"][:5]), meta["loss"]
    fresh = ch.tiny_t5(TINY, t5_tokenizer)
    assert parameter_counts(model) == parameter_counts(fresh) and model.config.d_model == TINY.d_model
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))

    torch.manual_seed(7)  # another global state: the cache serves the same model and meta
    again, meta_again = ch.span_pretrained(CFG, t5_tokenizer, TEXTS, progress=False)
    assert meta_again == meta
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # ... and trains it again the same way, bit for bit, once the cache is gone
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "empty"))
    _, meta_retrained = ch.span_pretrained(CFG, t5_tokenizer, TEXTS, progress=False)
    assert meta_retrained["loss"] == meta["loss"]
    # a different budget is a different artefact, not the cached one
    shorter = dataclasses.replace(CFG, span=dataclasses.replace(CFG.span, steps=5))
    _, meta_short = ch.span_pretrained(shorter, t5_tokenizer, TEXTS, progress=False)
    assert len(meta_short["loss"]) == 5 and meta_short["loss"][0] == meta["loss"][0]  # same init, first batch


def _splits(tok):
    enc = lambda name, rows: t5_train.encode_split(tok, name, rows, max_len=24)  # noqa: E731
    train = {"sst2": enc("sst2", sst2_rows(16)), "rte": enc("rte", rte_rows(8))}
    test = {"sst2": enc("sst2", sst2_rows(10)), "rte": enc("rte", rte_rows(6))}
    return train, test


def test_mixing_runs_rows_examples_and_what_each_run_learns(t5_tokenizer):  # noqa: F811
    train, test = _splits(t5_tokenizer)
    sizes = {n: len(s) for n, s in train.items()}
    runs = {"equal": t5.mixing_rates(sizes, "equal"), "proportional": t5.mixing_rates(sizes, "proportional"),
            "sst2 alone": {"sst2": 1.0}}
    cfg = t5_train.MixConfig(steps=120, batch=8, lr=1e-2, warmup=0.1, seed=0)
    built = []

    def build(seed):
        built.append(seed)
        return ch.tiny_t5(dataclasses.replace(TINY, dropout=0.0), t5_tokenizer, seed=seed)

    before = torch.get_rng_state()
    table, histories = ch.mixing_runs(build, t5_tokenizer, train, test, runs, cfg, seeds=2, progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert built == [0, 1, 0, 1, 0, 1]  # a fresh model per run and seed, initialised by the seed
    assert list(histories) == [(r, s) for r in runs for s in (0, 1)] and isinstance(table, pd.DataFrame)
    # one row per run, seed and task it trained on
    assert [(r.run, r.seed, r.task) for r in table.itertuples()] == [
        ("equal", 0, "sst2"), ("equal", 0, "rte"), ("equal", 1, "sst2"), ("equal", 1, "rte"),
        ("proportional", 0, "sst2"), ("proportional", 0, "rte"), ("proportional", 1, "sst2"),
        ("proportional", 1, "rte"), ("sst2 alone", 0, "sst2"), ("sst2 alone", 1, "sst2")]
    assert set(table.columns) >= {"run", "seed", "task", "rate", "examples", "train loss", "rank", "generate",
                                  "invalid", "label nll", "top answer", "constant answer", "seconds"}
    for r in table.itertuples():
        assert r.rate == runs[r.run][r.task]
    # every run sees steps x batch examples in all, whatever its tasks; the seed changes the draws
    for (run, seed), history in histories.items():
        assert table.query("run == @run and seed == @seed").examples.sum() == cfg.steps * cfg.batch
        assert len(history.loss) == cfg.steps
    assert histories["equal", 0].loss != histories["equal", 1].loss
    # generation is scored for the first seed only
    assert table[table.seed == 0][["generate", "invalid"]].notna().all().all()
    assert table[table.seed == 1][["generate", "invalid"]].isna().all().all()
    for column in ("rank", "generate", "invalid", "top answer", "constant answer"):
        assert table[column].dropna().between(0, 1).all(), column
    # rte is constant (always "entailment"): the constant answer is right every time, and every run
    # gives it (top answer 1); sst2 ("fine" / "dull", half each) is learned by every run
    rte = table[table.task == "rte"]
    assert (rte["constant answer"] == 1.0).all() and (rte["rank"] == 1.0).all() and (rte["top answer"] == 1).all()
    sst2 = table[table.task == "sst2"]
    assert (sst2["constant answer"] == 0.5).all() and (sst2["rank"] == 1.0).all(), table
    assert (sst2["top answer"] == 0.5).all()
    # the same protocol twice gives the same numbers (only the timings differ)
    again, _ = ch.mixing_runs(build, t5_tokenizer, train, test, runs, cfg, seeds=2, progress=False)
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))


def test_rates_of_the_chapter_runs():
    rates = ch.T5ChapterConfig().rates({"reviews": 50, "sst2": 4000, "ag_news": 1600})
    assert rates["reviews alone"] == {"reviews": 1.0}
    assert rates["+ SST-2, equal"] == {"reviews": 0.5, "sst2": 0.5}
    assert rates["+ SST-2, proportional"] == pytest.approx({"reviews": 50 / 4050, "sst2": 4000 / 4050})
    assert rates["+ AG News, equal"] == {"reviews": 0.5, "ag_news": 0.5}
