"""tlcourse.chapters.ch04_bert: every start of a tagging run sees the same sentences and seed, the
names the book reads from the chapter module resolve, and the freeze_body self-check against planted
mistakes. (The methods' tests: test_tagging.py, test_finetune.py, test_viz.py.)"""
import re
from pathlib import Path

from toy_bert import SMALL, tokenizer, toy_split  # noqa: F401 (tokenizer: a fixture)

from tlcourse import checks, finetune
from tlcourse.chapters import ch04_bert as ch

BOOK = Path(__file__).resolve().parents[1] / "book" / "04-bert-mlm.md"


def test_tagging_runs_give_every_start_the_same_sentences_and_seed(tokenizer):
    cfg = ch.BertChapterConfig(bert=SMALL, tag_budgets=(20, 40), tag_seeds=2, tag_test=30,
                               tagger=finetune.FinetuneConfig(min_steps=8, max_steps=8, batch=8, max_len=16))
    build = lambda: ch.tagger(SMALL, len(tokenizer))  # noqa: E731
    runs = ch.tagging_runs({"a": build, "b": build}, tokenizer, toy_split(60, 0), toy_split(50, 1), cfg,
                           progress=False)
    assert len(runs) == 2 * 2 * 2 and set(runs.columns) >= {"start", "sentences", "seed", "accuracy", "steps"}
    wide = runs.pivot_table(index=["sentences", "seed"], columns="start", values="accuracy")
    assert (wide["a"] == wide["b"]).all()  # same sentences, init and batches: the same run
    assert wide["a"].nunique() > 1  # ... and different ones across seeds and budgets


def test_transfer_runs_give_each_start_its_budgets_and_every_start_the_same_subsets(tokenizer):
    import datasets
    import numpy as np
    from transformers import BertForSequenceClassification

    rng = np.random.default_rng(0)
    filler = ["the", "a", "rabbit", "watch", "ran", "made", "went", "white", "tired"]

    def split(n):  # label 1 when "queen" occurs
        sentences = [list(rng.choice(filler, 4)) for _ in range(n)]
        for i, s in enumerate(sentences):
            if i % 2:
                s.insert(int(rng.integers(0, 4)), "queen")
        return datasets.Dataset.from_dict({"sentence": [" ".join(s) for s in sentences], "label": [i % 2 for i in range(n)]})

    def build():
        return BertForSequenceClassification(SMALL.bert_config(len(tokenizer)))

    ft = finetune.FinetuneConfig(min_steps=40, max_steps=40, batch=8, max_len=16, lr=3e-3)
    starts = {"a": ch.Start(build, tokenizer, ft, [8, 16]), "b": ch.Start(build, tokenizer, ft, [8, 16]),
              "c": ch.Start(build, tokenizer, ft, [16])}
    runs = ch.transfer_runs(starts, split(60), split(40), seeds=2, progress=False)
    assert len(runs) == (2 + 2 + 1) * 2 and set(runs.columns) >= {"start", "labels", "seed", "accuracy", "steps"}
    assert sorted(runs[runs.start == "c"]["labels"].unique()) == [16] and (runs.steps == 40).all()
    wide = runs.pivot_table(index=["labels", "seed"], columns="start", values="accuracy")
    assert (wide["a"] == wide["b"]).all()  # same subset, init and batches for the same seed
    assert runs.accuracy.between(0, 1).all() and runs[runs.start == "a"].accuracy.nunique() > 1


def test_single_piece_probes_leave_out_answers_the_vocabulary_splits(tokenizer):
    probes = [("the queen of [MASK] made tarts", "hearts"), ("the [MASK] was tired", "queenhearts")]
    assert len(tokenizer.tokenize("queenhearts")) > 1 and tokenizer.tokenize("hearts") == ["hearts"]
    kept, split = ch.single_piece_probes(tokenizer, probes)
    assert kept == probes[:1] and split == ["queenhearts"]


def test_every_name_the_book_reads_from_the_chapter_module_resolves():
    # the book reads ch.<name>; methods moved to method modules are imported back for it
    names = set(re.findall(r"\bch\.(\w+)", BOOK.read_text()))
    assert names and not [name for name in sorted(names) if not hasattr(ch, name)]


# ---- the self-check of exercise 4.4 -----------------------------------------------------------

def _freeze_reference(model):
    for p in model.bert.parameters():
        p.requires_grad_(False)
    return model


def _attribute_only(model):
    model.bert.requires_grad = False  # a plain attribute: nothing is frozen
    return model


def _reinitialised(model):
    model.bert.apply(model._init_weights)
    return _freeze_reference(model)


PLANTED_FREEZE = {
    "nothing frozen (eval mode instead)": lambda m: m.eval(),
    "requires_grad set as a module attribute": _attribute_only,
    "layers frozen, embeddings still train": lambda m: (m.bert.encoder.requires_grad_(False), m)[1],
    "head frozen too": lambda m: m.requires_grad_(False),
    "the head frozen, not the body": lambda m: (m.classifier.requires_grad_(False), m)[1],
    "returns nothing": lambda m: (_freeze_reference(m), None)[1],
    "re-initialises the body": _reinitialised,
}


def test_freeze_body_check_catches_planted_mistakes(capsys):
    assert checks.bert.freeze_body(_freeze_reference)
    stub = checks.bert.freeze_body(lambda m: (_ for _ in ()).throw(NotImplementedError("Exercise 4.4")))
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not checks.bert.freeze_body(fn) for name, fn in PLANTED_FREEZE.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out
