"""tlcourse.chapters.ch06_peft's protocol on a one-layer stand-in for MiniLM: what method_runs returns
per method and seed (learning rates, trainable counts, accuracies, the kept models). (The methods'
tests: test_lora.py; the self-checks': test_ch06_checks.py.)"""
import dataclasses

import datasets
import numpy as np
import pytest
import torch
from toy_bert import SMALL, tiny_minilm, tokenizer  # noqa: F401 (tokenizer: a fixture)

from tlcourse import finetune
from tlcourse.chapters import ch06_peft as ch
from tlcourse.train import parameter_counts

CFG = ch.PeftChapterConfig(ranks=(2,), targets=("query", "value"), seeds=2,
                           finetune=finetune.FinetuneConfig(min_steps=150, max_steps=150, batch=8, max_len=16),
                           lrs={"head only": 2e-2, "BitFit": 1e-2, "LoRA": 1e-2, "full": 3e-3, "prompt tuning": 3e-2,
                                "adapters": 1e-2}, head_lr=2e-2)


def _split(n, seed):
    """Label 1 when "queen" occurs: learnable from one word."""
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "rabbit", "watch", "ran", "made", "went", "white", "tired"]
    sentences = [list(rng.choice(filler, 4)) for _ in range(n)]
    for i, s in enumerate(sentences):
        if i % 2:
            s.insert(int(rng.integers(0, 4)), "queen")
    labels = [i % 2 for i in range(n)]
    return datasets.Dataset.from_dict({"sentence": [" ".join(s) for s in sentences], "label": labels})


@pytest.fixture(scope="module")
def runs(tokenizer):  # noqa: F811
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ch, "minilm_classifier", tiny_minilm)
        jobs = [(m, ch.learning_rate(CFG, m), CFG.seeds) for m in ["head only", "BitFit", "LoRA r=2", "full"]]
        train, test = _split(64, 0), _split(40, 1)
        before = torch.get_rng_state()
        table, kept = ch.method_runs(CFG, jobs, train, test, tokenizer, keep=("head only", "LoRA r=2"),
                                     progress=False)
        assert torch.equal(torch.get_rng_state(), before)
        again, _ = ch.method_runs(CFG, jobs[:2], train, test, tokenizer, progress=False)
        return table, kept, again, finetune.encode(tokenizer, test, ["sentence"], CFG.finetune.max_len)


def test_method_runs_has_a_row_per_method_and_seed_with_its_learning_rate(runs):
    table, _, _, _ = runs
    assert list(zip(table.method, table.seed)) == [(m, s) for m in ["head only", "BitFit", "LoRA r=2", "full"]
                                                   for s in range(CFG.seeds)]
    assert set(table.columns) >= {"method", "lr", "seed", "accuracy", "trainable", "total", "seconds", "final loss"}
    assert table.lr.tolist() == [ch.learning_rate(CFG, m) for m in table.method]
    assert table.accuracy.between(0, 1).all() and (table.seconds > 0).all()
    assert table[table.method == "head only"]["final loss"].isna().all()  # trained on cached features
    assert np.isfinite(table[table.method != "head only"]["final loss"]).all()


def test_method_runs_trainable_counts_follow_each_method(runs):
    table, _, _, _ = runs
    per = table.groupby("method")[["trainable", "total"]].nunique()
    assert (per == 1).all().all()  # the same counts for every seed
    count = table.groupby("method")[["trainable", "total"]].first()
    hidden, layers = SMALL.hidden, SMALL.layers
    head = hidden * 2 + 2
    full = count.loc["full"]
    assert full.trainable == full.total and count.loc["head only"].trainable == head
    assert count.loc["head only"].total == count.loc["BitFit"].total == full.total
    lora = 2 * layers * 2 * (hidden + hidden)  # query and value: r (d_in + d_out) each
    assert count.loc["LoRA r=2"].trainable == head + lora and count.loc["LoRA r=2"].total == full.total + lora
    assert head < count.loc["BitFit"].trainable < full.trainable


def test_method_runs_learn_the_toy_task_keep_seed_zero_and_repeat_exactly(runs):
    table, kept, again, enc_test = runs
    mean = table.groupby("method").accuracy.mean()
    assert mean["full"] >= 0.9 and mean["LoRA r=2"] >= 0.9, mean  # "queen" decides the label
    assert set(kept) == {"head only", "LoRA r=2"}
    for method, model in kept.items():  # the kept model is the seed-0 run's trained model
        assert parameter_counts(model)[0] == table.query("method == @method").trainable.iloc[0]
        row = table.query("method == @method and seed == 0").accuracy.item()
        assert finetune.evaluate(model, enc_test) == pytest.approx(row)
    common = table.drop(columns="seconds").iloc[: len(again)].reset_index(drop=True)
    assert common.equals(again.drop(columns="seconds"))
