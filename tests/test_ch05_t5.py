"""tlcourse.chapters.ch05_t5's protocol on a toy corpus and a one-layer T5: what span_pretrained caches
and reloads, and what mixing_runs returns per run and task. (The methods' tests: test_t5.py.)"""
import copy
import dataclasses

import numpy as np
import pandas as pd
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
    base = ch.tiny_t5(dataclasses.replace(TINY, dropout=0.0), t5_tokenizer)
    strategies = {"equal": t5.mixing_rates({n: len(s) for n, s in train.items()}, "equal"),
                  "proportional": t5.mixing_rates({n: len(s) for n, s in train.items()}, "proportional")}
    cfg = t5_train.MixConfig(steps=120, batch=8, lr=1e-2, warmup=0.1, seed=0)
    before = torch.get_rng_state()
    table, histories = ch.mixing_runs(lambda: copy.deepcopy(base), t5_tokenizer, train, test, strategies, cfg,
                                      progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    runs = ["equal", "proportional", "sst2 alone", "rte alone"]
    assert list(histories) == runs and isinstance(table, pd.DataFrame)
    # one row per run and task it trained on
    assert [(r.run, r.task) for r in table.itertuples()] == [
        ("equal", "sst2"), ("equal", "rte"), ("proportional", "sst2"), ("proportional", "rte"),
        ("sst2 alone", "sst2"), ("rte alone", "rte")]
    assert set(table.columns) >= {"run", "task", "rate", "examples", "train loss", "rank", "generate", "invalid",
                                  "majority", "seconds"}
    for r in table.itertuples():
        assert r.rate == (strategies[r.run][r.task] if r.run in strategies else 1.0)
    # a mixture's runs see steps x batch examples in all; a task alone, its share of the equal mixture
    for run in strategies:
        assert table[table.run == run].examples.sum() == cfg.steps * cfg.batch
        assert len(histories[run].loss) == cfg.steps
    for task in train:
        assert table.query("run == @task + ' alone'").examples.item() == cfg.steps // len(train) * cfg.batch
        assert len(histories[f"{task} alone"].loss) == cfg.steps // len(train)
    for column in ("rank", "generate", "invalid", "majority"):
        assert table[column].between(0, 1).all(), column
    # rte is constant (always "entailment"): its majority answer is right every time, and every run
    # that trained on it gives that answer; sst2 ("fine" / "dull") is learned in the mixtures
    assert (table[table.task == "rte"].majority == 1.0).all()
    assert (table[table.task == "rte"]["rank"] == 1.0).all(), table
    assert (table[table.task == "sst2"].majority == 0.5).all()
    assert (table.query("task == 'sst2' and run in @strategies")["rank"] == 1.0).all(), table
    # the same protocol twice gives the same numbers (only the timings differ)
    again, _ = ch.mixing_runs(lambda: copy.deepcopy(base), t5_tokenizer, train, test, strategies, cfg,
                              progress=False)
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), again.drop(columns="seconds"))
