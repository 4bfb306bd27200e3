"""Chapter 11's protocol pieces, without MiniLM and without long training: the profiles, the fixed
task splits, the target's few labels, the multi-task runs on small synthetic features, and the
in-context-learning error table with tiny untrained transformers."""

import dataclasses
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlcourse import icl
from tlcourse.chapters import ch11_multitask as ch
from tlcourse.multitask import MultiTaskNet, UncertaintyWeights, task_accuracy

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TLCOURSE_DATA", "").strip() or REPO.parent / "shared" / "data")
needs_data = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(),
    reason=f"shared data folder not found at {SHARED} "
    "(set TLCOURSE_DATA to the course's shared/data)",
)
UCI_ROWS = 1000  # every UCI Sentiment Labelled Sentences domain
# small enough to train in a blink; target_shots=8 of the default profile is kept
SMALL = dataclasses.replace(ch.CONFIGS["cpu"], hidden=8, steps=30, seeds=2)


# --------------------------------------------------------------------------------------------
# Profiles


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_profile_is_consistent(name):
    cfg = ch.CONFIGS[name]
    assert cfg.seeds >= 1 and cfg.steps >= 1 and cfg.hidden >= 1
    target_pool = UCI_ROWS - cfg.target_test
    assert 2 * cfg.target_shots <= target_pool and 2 * cfg.bow_shots <= target_pool
    assert 0 < cfg.partner_test < UCI_ROWS  # Amazon and Yelp keep a non-empty training pool
    assert cfg.ag_per_class * 4 > cfg.partner_test  # AG News keeps a training pool too
    assert cfg.lams[0] == 0.0  # λ = 0: soft sharing's "separate networks" reference
    assert all(a < b for a, b in zip(cfg.lams, cfg.lams[1:]))
    assert isinstance(cfg.icl, icl.ICLConfig)
    assert cfg.icl.k >= cfg.icl.dim  # least squares reaches 0 error within a prompt
    assert icl.ICLConfig(**dataclasses.asdict(cfg.icl)) == cfg.icl  # valid: __post_init__ passes
    assert cfg.icl_seeds >= 1 and cfg.icl_prompts >= 2 and cfg.ridge_alpha > 0


def test_gpu_profile_is_at_least_the_cpu_one():
    cpu, gpu = ch.CONFIGS["cpu"], ch.CONFIGS["gpu"]
    for f in ("seeds", "steps", "partner_train", "bow_partner", "bow_steps", "icl_seeds",
              "icl_prompts"):  # fmt: skip
        assert getattr(gpu, f) >= getattr(cpu, f), f
    assert gpu.icl.steps >= cpu.icl.steps
    # the same task: only the budget grows
    assert (gpu.target_shots, gpu.target_test, gpu.partner_test) == (
        cpu.target_shots, cpu.target_test, cpu.partner_test)  # fmt: skip


def test_partners_and_classes_agree():
    assert ch.TARGET not in ch.PARTNERS
    assert set(ch.CLASSES) == {ch.TARGET, *ch.PARTNERS}
    assert ch.CLASSES["ag_news"] == 4
    assert set(ch.PARTNERS.values()) == {"related", "unrelated", "conflicting"}


# --------------------------------------------------------------------------------------------
# Data: the fixed splits


@needs_data
@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_task_texts_splits(name):
    from tlcourse.data import load_sst2, load_uci_sentiment

    cfg = ch.CONFIGS[name]
    texts = ch.task_texts(cfg)
    assert set(texts) == {ch.TARGET, *ch.PARTNERS} - {"ag_news"}  # AG News comes encoded
    uci = load_uci_sentiment()
    source = {d: Counter(uci[d]["sentence"]) for d in ("imdb", "amazon", "yelp")}
    source["yelp_flipped"] = source["yelp"]
    source["sst2"] = Counter(load_sst2()["train"]["sentence"])
    # each sentence once: the pool holds every distinct sentence the test set does not
    sizes = {
        "imdb": (len(source["imdb"]) - cfg.target_test, cfg.target_test),
        "amazon": (len(source["amazon"]) - cfg.partner_test, cfg.partner_test),
        "yelp": (len(source["yelp"]) - cfg.partner_test, cfg.partner_test),
        "yelp_flipped": (len(source["yelp"]) - cfg.partner_test, cfg.partner_test),
        "sst2": (cfg.partner_train, cfg.partner_test),
    }
    assert len(source["imdb"]) < UCI_ROWS  # the source repeats some sentences ("10/10")
    for task, parts in texts.items():
        (pool, y_pool), (test, y_test) = parts["pool"], parts["test"]
        assert (len(pool), len(test)) == sizes[task], task
        assert len(y_pool) == len(pool) and len(y_test) == len(test)
        assert set(y_pool) | set(y_test) <= set(range(ch.CLASSES[task])), task
        assert set(y_pool) == set(range(ch.CLASSES[task])), task  # every class can be drawn
        # every sentence once, and none in both parts: no test sentence's label leaks
        assert len(set(pool)) == len(pool) and len(set(test)) == len(test), task
        assert not set(pool) & set(test), task
        assert set(pool) | set(test) <= set(source[task]), task
    # the target keeps enough of each class for the few labels (and the bag-of-words run)
    counts = Counter(texts["imdb"]["pool"][1])
    assert min(counts.values()) >= max(cfg.target_shots, cfg.bow_shots)


@needs_data
def test_task_texts_flipped_yelp_and_determinism():
    cfg = ch.CONFIGS["cpu"]
    texts = ch.task_texts(cfg)
    for part in ("pool", "test"):
        (s, y), (s_flip, y_flip) = texts["yelp"][part], texts["yelp_flipped"][part]
        assert s_flip == s
        assert y_flip == [1 - v for v in y]
    assert ch.task_texts(cfg) is texts  # cached
    again = ch.task_texts.__wrapped__(cfg)  # recomputed: the same fixed draws
    assert again is not texts and again == texts
    # the partners' data does not depend on the budget: the gpu profile only adds SST-2 rows
    gpu = ch.task_texts(ch.CONFIGS["gpu"])
    assert gpu["imdb"] == texts["imdb"] and gpu["yelp"] == texts["yelp"]


# --------------------------------------------------------------------------------------------
# The target's few labels


def test_target_shots_balanced_and_seeded():
    labels = torch.tensor([0, 1] * 30 + [1] * 10)
    idx = ch.target_shots(labels, 8, seed=0)
    assert len(idx) == 16 and len(set(idx.tolist())) == 16
    assert Counter(labels[idx].tolist()) == {0: 8, 1: 8}
    assert torch.equal(idx, ch.target_shots(labels, 8, seed=0))
    assert not torch.equal(idx, ch.target_shots(labels, 8, seed=1))
    four = torch.arange(40) % 4
    assert Counter(four[ch.target_shots(four, 3, seed=2)].tolist()) == {c: 3 for c in range(4)}
    # every row of a class when asked for all of them
    assert sorted(ch.target_shots(labels, 30, seed=3)[:30].tolist()) == list(range(0, 60, 2))


def test_target_shots_too_few_rows_is_a_clear_error():
    labels = torch.tensor([0] * 10 + [1] * 3)
    with pytest.raises(ValueError, match=r"Only 3 pool rows of class 1; asked for 4"):
        ch.target_shots(labels, 4, seed=0)


# --------------------------------------------------------------------------------------------
# Multi-task runs on synthetic features


def _split(n_classes, pool, test, g, dim=16, noise=0.1):
    centres = F.normalize(torch.randn(n_classes, dim, generator=g), dim=1)

    def draw(per_class):
        y = torch.arange(n_classes).repeat(per_class)
        return centres[y] + noise * torch.randn(len(y), dim, generator=g), y

    return {"pool": draw(pool), "test": draw(test)}


@pytest.fixture(scope="module")
def feats():
    """Shaped like task_features' output: ``task -> {"pool" | "test": (x, y)}``."""
    g = torch.Generator().manual_seed(0)
    out = {
        "imdb": _split(2, 20, 15, g),
        "sst2": _split(2, 30, 10, g),
        "yelp": _split(2, 30, 10, g),
        "ag_news": _split(4, 15, 5, g),
    }
    out["yelp_flipped"] = {p: (x, 1 - y) for p, (x, y) in out["yelp"].items()}
    return out


def test_run_condition_builds_the_network_asked_for(feats):
    state = torch.get_rng_state()
    alone = ch.run_condition(SMALL, feats, (), seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's draws are left alone
    assert isinstance(alone, MultiTaskNet) and alone.tasks == ["imdb"] and alone.weights is None

    model = ch.run_condition(SMALL, feats, ("sst2", "ag_news"), seed=0)
    assert model.tasks == ["imdb", "sst2", "ag_news"] and model.hard
    classes = {t: h.out_features for t, h in model.heads.items()}
    assert classes == {"imdb": 2, "sst2": 2, "ag_news": 4}
    assert model.heads["imdb"].in_features == SMALL.hidden
    assert model("imdb", feats["imdb"]["test"][0]).shape == (30, 2)

    soft = ch.run_condition(SMALL, feats, ("yelp",), seed=0, hard=False, lam=0.1)
    assert not soft.hard and isinstance(soft.body, nn.ModuleDict)
    assert set(soft.body) == {"imdb", "yelp"} and soft.body_of("imdb") is not soft.body_of("yelp")

    weighted = ch.run_condition(SMALL, feats, ("yelp_flipped",), seed=0, learned_weights=True)
    assert isinstance(weighted.weights, UncertaintyWeights)
    assert weighted.weights.tasks == ["imdb", "yelp_flipped"]
    assert set(weighted.weights.weights()) == {"imdb", "yelp_flipped"}
    assert not torch.equal(weighted.weights.log_var.detach(), torch.zeros(2))  # trained with it


def test_run_condition_soft_sharing_pulls_bodies_together(feats):
    def gap(model):
        a, b = model.body_of("imdb")[1].weight, model.body_of("sst2")[1].weight
        return (a - b).pow(2).sum().item()

    apart = ch.run_condition(SMALL, feats, ("sst2",), seed=0, hard=False, lam=0.0)
    pulled = ch.run_condition(SMALL, feats, ("sst2",), seed=0, hard=False, lam=1.0)
    assert gap(pulled) < 0.5 * gap(apart)


def test_run_condition_unknown_partner(feats):
    named = r"Unknown partner task\(s\) \['imdb_typo'\]; choose from .*sst2.*ag_news.*yelp_flipped"
    with pytest.raises(ValueError, match=named):
        ch.run_condition(SMALL, feats, ("sst2", "imdb_typo"), seed=0)
    with pytest.raises(ValueError, match="choose from"):
        ch.run_condition(SMALL, feats, (ch.TARGET,), seed=0)  # the target is no partner


def test_single_task_learns_separable_target(feats):
    cfg = dataclasses.replace(SMALL, hidden=16, steps=100)
    model = ch.run_condition(cfg, feats, (), seed=0)
    assert task_accuracy(model, "imdb", *feats["imdb"]["test"]) >= 0.9


def _accuracies_in_range(df):
    assert df["accuracy"].notna().all() and df["accuracy"].between(0.0, 1.0).all()


def test_hard_sharing_runs(feats):
    conditions = {"alone": (), "+ SST-2": ("sst2",), "+ flipped Yelp": ("yelp_flipped",)}
    df = ch.hard_sharing_runs(SMALL, feats, conditions, progress=False)
    assert list(df.columns) == ["condition", "seed", "accuracy"]
    assert len(df) == len(conditions) * SMALL.seeds
    assert sorted(zip(df["condition"], df["seed"])) == sorted(
        (c, s) for c in conditions for s in range(SMALL.seeds))  # fmt: skip
    _accuracies_in_range(df)
    n_test = len(feats["imdb"]["test"][1])
    assert ((df["accuracy"] * n_test).round(4) % 1 == 0).all()  # the target's test rows
    again = ch.hard_sharing_runs(SMALL, feats, conditions, progress=False)
    assert df.equals(again)


def test_soft_sharing_runs(feats):
    partners = ("sst2", "ag_news")
    df = ch.soft_sharing_runs(SMALL, feats, partners, progress=False)
    assert list(df.columns) == ["partner", "lam", "seed", "accuracy"]
    assert len(df) == len(partners) * len(SMALL.lams) * SMALL.seeds
    assert not df.duplicated(["partner", "lam", "seed"]).any()
    assert set(df["lam"]) == set(SMALL.lams) and set(df["partner"]) == set(partners)
    _accuracies_in_range(df)
    assert df.equals(ch.soft_sharing_runs(SMALL, feats, partners, progress=False))


def test_weighting_runs(feats):
    partners = ("sst2", "yelp_flipped")
    df = ch.weighting_runs(SMALL, feats, partners, progress=False)
    assert list(df.columns) == ["weighting", "task", "seed", "accuracy", "weight"]
    assert len(df) == 2 * SMALL.seeds * (1 + len(partners))
    assert not df.duplicated(["weighting", "task", "seed"]).any()
    assert set(df["task"]) == {"imdb", *partners}
    _accuracies_in_range(df)
    assert (df.loc[df["weighting"] == "uniform", "weight"] == 1.0).all()
    learned = df.loc[df["weighting"] == "learned", "weight"]
    assert (learned > 0).all() and (learned != 1.0).all()
    assert df.equals(ch.weighting_runs(SMALL, feats, partners, progress=False))


# --------------------------------------------------------------------------------------------
# In-context learning: the error table


@pytest.fixture(scope="module")
def icl_table():
    cfg = icl.ICLConfig(dim=2, k=4, width=8, layers=1, heads=2, steps=1)
    models = []
    for s in range(2):
        torch.manual_seed(s)
        models.append(icl.TinyGPT(cfg))
    return cfg, ch.icl_errors(cfg, models, prompts=20, alpha=0.25)


def test_icl_errors_rows(icl_table):
    cfg, df = icl_table
    methods = ["transformer (seed 0)", "transformer (seed 1)", "least squares",
               "ridge (α = 0.25)", "3 nearest neighbours", "averaging"]  # fmt: skip
    assert list(df.columns) == ["setting", "method", "k", "error", "SE"]
    assert len(df) == len(ch.SHIFTS) * len(methods) * (cfg.k + 1)
    assert set(df["setting"]) == set(ch.SHIFTS) and set(df["method"]) == set(methods)
    for (setting, method), part in df.groupby(["setting", "method"]):
        assert part["k"].tolist() == list(range(cfg.k + 1)), (setting, method)
    assert (df["error"] >= 0).all() and (df["SE"] >= 0).all()


def test_icl_least_squares_solves_noiseless_prompts(icl_table):
    cfg, df = icl_table
    ls = df[df["method"] == "least squares"].set_index(["setting", "k"])["error"]
    for setting in ("as in training", "inputs x 3"):
        for k in range(cfg.dim, cfg.k + 1):
            assert ls[(setting, k)] < 1e-8, (setting, k)
    # noisy labels: least squares cannot fit the noise away
    assert ls[("noisy labels", cfg.k)] > 0.01


def test_icl_errors_are_normalised_by_the_input_scale(icl_table):
    """Inputs three times as large make y nine times as large in square; the table divides by 9.
    The same generator draws the same directions, weights and noise, so 3-NN (which picks the same
    neighbours and averages their y) and predicting 0 at k = 0 score exactly the same in both."""
    _, df = icl_table
    by = df.set_index(["setting", "method", "k"])
    plain = by.loc["as in training"]
    large = by.loc["inputs x 3"]
    nn3 = "3 nearest neighbours"
    for column in ("error", "SE"):
        assert large.loc[nn3, column].to_numpy() == pytest.approx(
            plain.loc[nn3, column].to_numpy(), rel=1e-6, abs=1e-12)  # fmt: skip
    # k = 0: every baseline predicts 0, scoring E[y²] / dim / x_scale² — the same in each setting
    zero = plain.xs(0, level="k")["error"]
    assert zero.drop(index=[m for m in zero.index if m.startswith("transformer")]).nunique() == 1
    assert large.xs(0, level="k")["error"]["least squares"] == pytest.approx(
        zero["least squares"], rel=1e-5)  # fmt: skip
