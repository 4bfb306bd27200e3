"""Chapter 11: the experiments — multi-task learning on sentiment and topic tasks, and a small
transformer that learns linear regression in context.

Multi-task: the target is IMDb sentence sentiment with a handful of labels (UCI Sentiment Labelled
Sentences, Kotzias et al. 2015). Its partners are related (SST-2 movie-review phrases; Amazon and
Yelp review sentences), unrelated (AG News topics) or conflicting (Yelp with every label flipped).
Networks read frozen all-MiniLM-L6-v2 sentence vectors (:func:`task_features`, cached) or train a
bag-of-words encoder from scratch (:func:`bow_runs`). Every condition runs on the same seeds: a
seed fixes the target's labelled sentences, the initialisation and the batches.

In-context learning: :mod:`tlcourse.icl`'s TinyGPT trained on prompts of random linear functions
(Garg et al. 2022), compared with least squares and the other baselines at each prompt length.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch
from torch import nn

from ..config import Profiles
from .. import hub, icl
from ..data import load_sst2, load_uci_sentiment
from ..episodes import ag_news_pool
from ..features import sentence_features
from ..multitask import (
    MultiTaskNet,
    UncertaintyWeights,
    fit_multitask,
    mlp_body,
    task_accuracy,
)
from ..text import Vocab, tokenize
from ..train import progress_bar, seeded

TARGET = "imdb"
# the partner tasks: what each is to the target
PARTNERS = {
    "sst2": "related",
    "amazon": "related",
    "yelp": "related",
    "ag_news": "unrelated",
    "yelp_flipped": "conflicting",
}
CLASSES = {"imdb": 2, "sst2": 2, "amazon": 2, "yelp": 2, "ag_news": 4, "yelp_flipped": 2}


@dataclass(frozen=True)
class MultitaskChapterConfig:
    """Sizes of chapter 11 for one profile."""

    seeds: int = 5
    target_shots: int = 8  # labelled IMDb sentences per class: the low-resource task
    target_test: int = 500  # held-out IMDb sentences, the same for every seed
    partner_train: int = 800  # labelled SST-2 sentences (Amazon and Yelp: 750, AG News: below)
    partner_test: int = 250  # held-out sentences of every partner (task-weighting table)
    # AG News: chapter 7's pool of MiniLM-encoded test-split sentences (cached once chapter 7 has
    # run), this many per class; partner_test of them are held out
    ag_per_class: int = 250
    hidden: int = 64  # width of the body on the 384 MiniLM features
    steps: int = 200
    lr: float = 3e-3
    batch: int = 64  # rows of every task per step
    lams: tuple[float, ...] = (0.0, 1e-3, 1e-2, 1e-1)  # soft sharing's λ
    # bag-of-words encoder trained from scratch (chapter 1's model, shared by the tasks)
    bow_shots: int = 50  # IMDb labels per class for the from-scratch encoder
    bow_partner: int = 8000  # SST-2 rows (cheap: nothing to encode)
    bow_dim: int = 64
    bow_steps: int = 300
    bow_lr: float = 1e-2
    max_len: int = 64
    # in-context learning: the transformer, its training, and the test prompts
    icl: icl.ICLConfig = field(default_factory=icl.ICLConfig)
    icl_seeds: int = 3
    icl_prompts: int = 1000
    ridge_alpha: float = 0.25  # the Bayes-optimal ridge for the noisy-label prompts (noise 0.5)


def smoke(cfg: MultitaskChapterConfig) -> MultitaskChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        seeds=2,
        target_test=100,
        partner_train=200,
        partner_test=50,
        ag_per_class=50,
        steps=10,
        bow_partner=500,
        bow_steps=10,
        icl=replace(cfg.icl, steps=10),
        icl_seeds=2,
        icl_prompts=50,
    )


CONFIGS = Profiles(
    {
        "cpu": MultitaskChapterConfig(),
        "gpu": MultitaskChapterConfig(
            seeds=10,
            partner_train=4000,
            bow_partner=40_000,
            bow_steps=1000,
            icl=icl.ICLConfig(dim=8, k=24, width=128, layers=4, steps=10_000, lr=1e-3),
            icl_prompts=4000,
        ),
    },
    smoke=smoke,
)


# --------------------------------------------------------------------------------------------
# Data


@functools.lru_cache(maxsize=4)
def task_texts(cfg: MultitaskChapterConfig) -> dict[str, dict[str, tuple[list[str], list[int]]]]:
    """``task -> {"pool" | "test": (texts, labels)}``: the IMDb target (a pool to draw the few
    labels from, and a fixed test set) and every partner's training and test sentences. Fixed draws
    (seed 0), so every seed and condition sees the same partner data; no sentence is in both the
    pool and the test set of a task (repeated sentences are kept once). AG News comes encoded
    from :func:`tlcourse.episodes.ag_news_pool` (see :func:`task_features`)."""
    g = torch.Generator().manual_seed(0)
    out = {}

    def take(texts, labels, n_train, n_test):  # n_train None: all but the test sentences
        # each sentence once: the sources repeat some short ones ("10/10", "Great Phone."), and a
        # copy in the pool would leak its twin's label into the test set
        first = list({t: i for i, t in reversed(list(enumerate(texts)))}.values())[::-1]
        texts, labels = [texts[i] for i in first], [labels[i] for i in first]
        order = torch.randperm(len(texts), generator=g).tolist()
        n_train = len(texts) - n_test if n_train is None else n_train
        pick = lambda idx: ([texts[i] for i in idx], [int(labels[i]) for i in idx])  # noqa: E731
        return {"pool": pick(order[:n_train]), "test": pick(order[n_train : n_train + n_test])}

    uci = load_uci_sentiment()
    for d in ("imdb", "amazon", "yelp"):
        s, y = list(uci[d]["sentence"]), list(uci[d]["label"])
        out[d] = take(s, y, None, cfg.target_test if d == TARGET else cfg.partner_test)
    sst = load_sst2()["train"]
    sentences, labels = list(sst["sentence"]), list(sst["label"])  # plain lists: fast indexing
    out["sst2"] = take(sentences, labels, cfg.partner_train, cfg.partner_test)
    # the conflicting task: Yelp's sentences with every label flipped
    out["yelp_flipped"] = {
        part: (texts, [1 - y for y in labels]) for part, (texts, labels) in out["yelp"].items()
    }
    return out


def task_features(
    cfg: MultitaskChapterConfig, progress: bool = True
) -> dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """:func:`task_texts` as frozen all-MiniLM-L6-v2 vectors (mean pooling, L2-normalised; the
    encoding is cached, the labels are not); AG News from chapter 7's encoded pool."""
    texts = task_texts(cfg)
    names = [(t, part) for t in texts if t != "yelp_flipped" for part in ("pool", "test")]
    flat = [s for t, part in names for s in texts[t][part][0]]
    key = {"rows": {f"{t}/{p}": len(texts[t][p][0]) for t, p in names}, "max_len": cfg.max_len}

    def compute():
        vectors = sentence_features(flat, "minilm", max_length=cfg.max_len, progress=progress)
        return {"features": vectors}, {}

    state, _ = hub.cached_tensors("ch11-minilm-features", key, compute, verbose=False)
    out, start = {}, 0
    for t, part in names:
        n = len(texts[t][part][0])
        x = state["features"][start : start + n]
        out.setdefault(t, {})[part] = (x, torch.tensor(texts[t][part][1]))
        start += n
    # AG News from chapter 7's encoded pool: a fixed split into training and held-out sentences
    ag_x, ag_y, _ = ag_news_pool(cfg.ag_per_class, seed=0, progress=progress)
    order = torch.randperm(len(ag_y), generator=torch.Generator().manual_seed(0))
    pool, test = order[: len(order) - cfg.partner_test], order[len(order) - cfg.partner_test :]
    out["ag_news"] = {"pool": (ag_x[pool], ag_y[pool]), "test": (ag_x[test], ag_y[test])}
    out["yelp_flipped"] = {p: (x, 1 - y) for p, (x, y) in out["yelp"].items()}
    return out


def target_shots(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` examples of each class, drawn from the target's pool by ``seed``."""
    g = torch.Generator().manual_seed(1000 + seed)
    picked = []
    for c in labels.unique().tolist():
        rows = torch.nonzero(labels == c).flatten()
        if len(rows) < per_class:
            raise ValueError(f"Only {len(rows)} pool rows of class {c}; asked for {per_class}.")
        picked.append(rows[torch.randperm(len(rows), generator=g)[:per_class]])
    return torch.cat(picked)


# --------------------------------------------------------------------------------------------
# Multi-task runs on frozen features


def run_condition(
    cfg: MultitaskChapterConfig,
    feats,
    partners: tuple[str, ...],
    seed: int,
    *,
    hard: bool = True,
    lam: float = 0.0,
    learned_weights: bool = False,
) -> MultiTaskNet:
    """Train the target with ``partners`` (none: the single-task baseline) on one seed; return the
    trained network."""
    unknown = [p for p in partners if p not in PARTNERS]
    if unknown:
        raise ValueError(f"Unknown partner task(s) {unknown}; choose from {list(PARTNERS)}.")
    tasks = (TARGET, *partners)
    x, y = feats[TARGET]["pool"]
    idx = target_shots(y, cfg.target_shots, seed)
    data = {TARGET: (x[idx], y[idx])}
    data.update({p: feats[p]["pool"] for p in partners})
    with seeded(seed):
        model = MultiTaskNet(
            {t: CLASSES[t] for t in tasks},
            lambda: mlp_body(x.shape[1], cfg.hidden),
            cfg.hidden,
            hard=hard,
            weights=UncertaintyWeights(tasks) if learned_weights else None,
        )
        fit_multitask(
            model,
            data,
            steps=cfg.steps,
            lr=cfg.lr,
            batch_size=cfg.batch,
            lam=lam,
            seed=seed,
            progress=False,
        )
    return model


def hard_sharing_runs(
    cfg: MultitaskChapterConfig, feats, conditions: dict[str, tuple[str, ...]], progress=True
) -> pd.DataFrame:
    """Target accuracy under hard sharing with each condition's partners, every seed."""
    rows = []
    grid = [(name, s) for name in conditions for s in range(cfg.seeds)]
    for name, seed in progress_bar(grid, progress=progress, desc="hard sharing"):
        model = run_condition(cfg, feats, conditions[name], seed)
        acc = task_accuracy(model, TARGET, *feats[TARGET]["test"])
        rows.append({"condition": name, "seed": seed, "accuracy": acc})
    return pd.DataFrame(rows)


def soft_sharing_runs(
    cfg: MultitaskChapterConfig, feats, partners: tuple[str, ...], progress=True
) -> pd.DataFrame:
    """Target accuracy with one partner at a time under soft sharing, for every λ and seed."""
    rows = []
    grid = [(p, lam, s) for p in partners for lam in cfg.lams for s in range(cfg.seeds)]
    for partner, lam, seed in progress_bar(grid, progress=progress, desc="soft sharing"):
        model = run_condition(cfg, feats, (partner,), seed, hard=False, lam=lam)
        acc = task_accuracy(model, TARGET, *feats[TARGET]["test"])
        rows.append({"partner": partner, "lam": lam, "seed": seed, "accuracy": acc})
    return pd.DataFrame(rows)


def weighting_runs(
    cfg: MultitaskChapterConfig, feats, partners: tuple[str, ...], progress=True
) -> pd.DataFrame:
    """Every task's test accuracy with uniform and with learned (uncertainty) weights, and the
    learned weights, every seed."""
    rows = []
    grid = [(w, s) for w in ("uniform", "learned") for s in range(cfg.seeds)]
    for weighting, seed in progress_bar(grid, progress=progress, desc="task weights"):
        model = run_condition(cfg, feats, partners, seed, learned_weights=weighting == "learned")
        learned = model.weights.weights() if model.weights is not None else {}
        for t in (TARGET, *partners):
            acc = task_accuracy(model, t, *feats[t]["test"])
            rows.append(
                {
                    "weighting": weighting,
                    "task": t,
                    "seed": seed,
                    "accuracy": acc,
                    "weight": learned.get(t, 1.0),
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Multi-task from scratch: a shared bag-of-words encoder


def bow_runs(cfg: MultitaskChapterConfig, progress=True) -> pd.DataFrame:
    """IMDb with ``bow_shots`` labels per class, alone or with ``bow_partner`` SST-2 rows, on a
    bag-of-words encoder trained from scratch (embeddings and body shared under hard sharing)."""
    texts = task_texts(cfg)
    sst = load_sst2()["train"]
    g = torch.Generator().manual_seed(0)
    rows_sst = torch.randperm(len(sst), generator=g)[: cfg.bow_partner].tolist()
    sst_tok = [tokenize(s) for s in sst.select(rows_sst)["sentence"]]
    imdb_pool = [tokenize(s) for s in texts[TARGET]["pool"][0]]
    imdb_test = [tokenize(s) for s in texts[TARGET]["test"][0]]
    vocab = Vocab.build(sst_tok + imdb_pool, min_count=2)
    enc = lambda toks: vocab.encode_batch(toks, cfg.max_len)  # noqa: E731
    pool_y = torch.tensor(texts[TARGET]["pool"][1])
    test = (enc(imdb_test), torch.tensor(texts[TARGET]["test"][1]))
    partner = (enc(sst_tok), torch.tensor(sst.select(rows_sst)["label"]))
    pool_x = enc(imdb_pool)

    def body():
        return nn.Sequential(
            nn.EmbeddingBag(len(vocab), cfg.bow_dim, mode="mean", padding_idx=vocab.pad_id),
            nn.Linear(cfg.bow_dim, cfg.hidden),
            nn.ReLU(),
        )

    rows = []
    grid = [(c, s) for c in ("IMDb alone", "IMDb + SST-2") for s in range(cfg.seeds)]
    for condition, seed in progress_bar(grid, progress=progress, desc="bag of words"):
        idx = target_shots(pool_y, cfg.bow_shots, seed)
        data = {TARGET: (pool_x[idx], pool_y[idx])}
        if condition != "IMDb alone":
            data["sst2"] = partner
        with seeded(seed):
            model = MultiTaskNet({t: 2 for t in data}, body, cfg.hidden)
            fit_multitask(
                model,
                data,
                steps=cfg.bow_steps,
                lr=cfg.bow_lr,
                batch_size=cfg.batch,
                seed=seed,
                progress=False,
            )
        acc = task_accuracy(model, TARGET, *test)
        rows.append({"condition": condition, "seed": seed, "accuracy": acc})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# In-context learning of linear functions

# prompts at test time: in distribution, then the two shifts (noisy labels; inputs three times as
# large as any seen in training)
SHIFTS = {"as in training": {}, "noisy labels": {"noise": 0.5}, "inputs x 3": {"x_scale": 3.0}}


def icl_model(cfg: icl.ICLConfig, seed: int, progress: bool = True) -> tuple[icl.TinyGPT, dict]:
    """A :class:`tlcourse.icl.TinyGPT` trained on random linear functions (cached artefact);
    meta holds the training losses and time."""

    def build():
        with seeded(seed):
            return icl.TinyGPT(cfg)

    def train(model):
        start = time.perf_counter()
        trained, history = icl.train_icl(cfg, seed, progress=progress)
        model.load_state_dict(trained.state_dict())
        return {"loss": history.loss, "seconds": time.perf_counter() - start}

    key = {**asdict(cfg), "seed": seed}
    return hub.cached_module("ch11-icl-gpt", key, build, train, verbose=False)


def icl_errors(
    cfg: icl.ICLConfig, models: list, prompts: int, alpha: float, seed: int = 12345
) -> pd.DataFrame:
    """Normalised squared error at every number of in-context examples for each model (one row
    per seed) and each baseline, on the same ``prompts`` test prompts per setting of
    :data:`SHIFTS`. The error is divided by ``E[y²] = dim · x_scale²`` so that predicting 0
    scores 1 in every setting."""
    baselines = {
        "least squares": icl.least_squares,
        f"ridge (α = {alpha:g})": functools.partial(icl.ridge, alpha=alpha),
        "3 nearest neighbours": icl.nearest_neighbours,
        "averaging": icl.averaging,
    }
    rows = []
    for setting, shift in SHIFTS.items():
        g = torch.Generator().manual_seed(seed)
        xs, ys = icl.sample_tasks(prompts, cfg.k, cfg.dim, g, **shift)
        scale = shift.get("x_scale", 1.0) ** 2
        methods = {f"transformer (seed {s})": functools.partial(icl.model_predictions, m)
                   for s, m in enumerate(models)}  # fmt: skip
        methods.update(baselines)
        for method, predict in methods.items():
            mean, se = icl.errors_by_k(predict, xs, ys)
            for k, (m, e) in enumerate(zip(mean.tolist(), se.tolist())):
                rows.append({"setting": setting, "method": method, "k": k,
                             "error": m / scale, "SE": e / scale})  # fmt: skip
    return pd.DataFrame(rows)
