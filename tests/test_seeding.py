"""Seeded functions keep their seed to themselves (issue 19).

:func:`tlcourse.train.seeded` fixes a function's own draws (initialisation, dropout) by its seed and
puts the caller's global random state back. So (a) running or skipping a cell that builds a model,
fits a probe or runs a self-check does not change what the next cell draws, and (b) each seeded
function leaves ``torch.get_rng_state()`` as it found it while its own result stays a function of
its seed alone."""
import dataclasses

import datasets
import pytest
import torch
from toy_bert import SMALL, tiny_minilm, tokenizer  # noqa: F401 (tokenizer: a fixture)
from toy_t5 import TINY, t5_tokenizer  # noqa: F401 (t5_tokenizer: a fixture)

from tlcourse import distill, finetune, mlm, probes, t5_train
from tlcourse.chapters import ch04_bert, ch05_t5, ch06_peft
from tlcourse.train import seeded

PEFT = ch06_peft.PeftChapterConfig(ranks=(2,), finetune=finetune.FinetuneConfig(min_steps=6, max_steps=6, batch=8,
                                                                                max_len=16))


@pytest.fixture(autouse=True)
def offline_minilm(monkeypatch, tmp_path):
    monkeypatch.setattr(ch06_peft, "minilm_classifier", tiny_minilm)
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))


def _teacher():
    from transformers import BertForSequenceClassification

    with seeded(0):
        return BertForSequenceClassification(SMALL.bert_config(200))


def _encoded(tok, n=32):
    sentences = [f"the {'queen' if i % 2 else 'rabbit'} ran" for i in range(n)]
    ds = datasets.Dataset.from_dict({"sentence": sentences, "label": [i % 2 for i in range(n)]})
    return finetune.encode(tok, ds, ["sentence"], 16)


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


# What each seeded function gives (a tensor to compare); each must keep the caller's global state.
def narrow_student(tok, t5_tok):
    return _flat(distill.narrow_student(_teacher(), hidden=16, layers=1, heads=2, seed=3))


def fit_head(tok, t5_tok):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 40, 6, generator=g), torch.randint(2, (40,), generator=g)
    predict, weights = probes.fit_head(x, y, probes.HeadConfig(hidden=8, steps=3, batch=8), seed=1)
    return torch.cat([predict(x).float(), torch.as_tensor(weights).float()])


def peft_build(method):
    return lambda tok, t5_tok: _flat(ch06_peft.build(method, PEFT, seed=2))


def train_head(tok, t5_tok):
    g = torch.Generator().manual_seed(0)
    head = ch06_peft.train_head(torch.randn(30, 32, generator=g), torch.randint(2, (30,), generator=g),
                                ch06_peft.run_config(PEFT, 1e-3), seed=1, num_labels=2)
    return _flat(head)


def tiny_t5(tok, t5_tok):
    return _flat(ch05_t5.tiny_t5(TINY, t5_tok, seed=4))


def span_corruption(tok, t5_tok):  # dropout 0.1: training draws from torch's generator
    model = ch05_t5.tiny_t5(TINY, t5_tok)
    rows = torch.randint(5, 100, (8, 16), generator=torch.Generator().manual_seed(0))
    meta = t5_train.pretrain_span_corruption(model, rows, ch05_t5.sentinel_ids(t5_tok), t5_tok.eos_token_id,
                                             t5_tok.pad_token_id, t5_train.MixConfig(steps=2, batch=4), progress=False)
    return torch.tensor(meta["loss"])


def pretrain_mlm(tok, t5_tok):
    cfg = dataclasses.replace(SMALL, steps=2, batch=4, warmup=1)
    model, meta = mlm.pretrain_mlm("seeding-mlm", tok, ["the queen ran past the rabbit"] * 20, cfg, progress=False)
    return torch.cat([torch.tensor(meta["loss"]), _flat(model)])


def finetune_runs(tok, t5_tok):
    from transformers import BertForSequenceClassification

    cfg = finetune.FinetuneConfig(min_steps=3, max_steps=3, batch=8, max_len=16)
    start = ch04_bert.Start(lambda: BertForSequenceClassification(SMALL.bert_config(len(tok))), tok, cfg, [8])
    ds = datasets.Dataset.from_dict({"sentence": ["the queen ran", "the rabbit ran"] * 8, "label": [1, 0] * 8})
    runs = ch04_bert.transfer_runs({"a": start}, ds, ds, seeds=1, progress=False)
    return torch.tensor(runs.accuracy.tolist())


SEEDED = {"narrow_student": narrow_student, "fit_head": fit_head, "tiny_t5": tiny_t5,
          "pretrain_span_corruption": span_corruption, "pretrain_mlm": pretrain_mlm,
          "ch04 transfer_runs": finetune_runs, "ch06 train_head": train_head,
          **{f"ch06 build {m}": peft_build(m) for m in ["full", "head only", "BitFit", "LoRA r=2"]}}


def test_seeded_fixes_the_block_and_restores_the_callers_state():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded(5):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(5)
    assert torch.equal(inside, torch.rand(3))
    before = torch.get_rng_state()
    with pytest.raises(RuntimeError), seeded(5):  # restored on an exception too
        raise RuntimeError
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("name", SEEDED)
def test_a_seeded_function_keeps_the_global_state_and_its_result_is_its_seeds(name, tokenizer, t5_tokenizer,  # noqa: F811
                                                                             tmp_path, monkeypatch):
    fn = SEEDED[name]
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = fn(tokenizer, t5_tokenizer)
    assert torch.equal(torch.get_rng_state(), before), f"{name} changed the caller's global random state"
    torch.manual_seed(99)  # another global state, (for a cached function) another cache: the same result
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "again"))
    assert torch.equal(fn(tokenizer, t5_tokenizer), first), f"{name}'s result depends on the global state"


def _cell(tok, encoded):
    """A notebook cell that draws from the global generator: a model's init and its dropout."""
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(SMALL.bert_config(len(tok)))
    cfg = finetune.FinetuneConfig(min_steps=4, max_steps=4, batch=8, max_len=16)
    _, losses = finetune.finetune_classifier(model, encoded, encoded, cfg)
    return losses


@pytest.mark.parametrize("between", ["narrow_student", "fit_head", "tiny_t5", "ch06 build LoRA r=2",
                                     "ch06 train_head"])
def test_running_or_skipping_a_seeded_cell_leaves_the_next_cells_draws(between, tokenizer, t5_tokenizer):  # noqa: F811
    encoded = _encoded(tokenizer)
    torch.manual_seed(0)  # config.setup
    skipped = _cell(tokenizer, encoded)
    torch.manual_seed(0)
    SEEDED[between](tokenizer, t5_tokenizer)
    ran = _cell(tokenizer, encoded)
    assert ran == skipped, f"running {between} changed what the next cell drew"
