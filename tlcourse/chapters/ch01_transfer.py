"""Chapter 1: what transfer buys you. Pretrain on a source task, reuse the body on a target task.

The model is :class:`tlcourse.bow.BagOfWords`, small on purpose, so that the whole learning-curve
experiment runs on a laptop CPU in about a minute; the point is the transfer protocol, which the
later chapters repeat with bigger models:

1. pretrain a model on a labelled *source* task ``T_S`` in a source domain ``D_S``;
2. keep its body (the parameters ``theta``), put a fresh head on it for the *target* task;
3. either freeze the body (feature extraction) or fine-tune everything (Pan & Yang 2010's
   *parameter transfer*; Yosinski et al. 2014), on a budget of ``k`` target labels;
4. compare with the same network trained from scratch on the same ``k`` labels.

Two variations measure what step 2 costs and what step 3 does to the source task: when source and
target share their labels, the source head can be kept (used as it is, zero-shot, or fine-tuned
with the body); and the fine-tuned model's accuracy on the source task's held-out rows, before and
after, measures catastrophic forgetting (Kirkpatrick et al. 2017).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..config import Profiles
from .. import data, hub
from ..bow import BagOfWords, classification_loss, finetune_eval, transfer_model
from ..text import Vocab, tokenize
from ..train import accuracy, fit, progress_bar, random_batches, seeded
from ..viz import mean_se, seed_table  # noqa: F401  (the chapter calls ch.seed_table, ch.mean_se)


@dataclass(frozen=True)
class TransferConfig:
    """Sizes of the chapter-1 experiment for one profile (see ``CONFIGS``)."""

    target: str = "amazon"  # UCI sentiment domain used as the target task
    test_size: int = 400  # fixed, class-balanced test split of the target domain
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500)
    seeds: int = 5
    min_count: int = 2  # vocabulary: words seen this often in source + target text
    max_len: int = 48  # tokens kept per sentence
    dim: int = 64  # embedding size
    hidden: int = 64  # body output size (what is transferred)
    pretrain_steps: int = 1000
    pretrain_batch: int = 256
    pretrain_lr: float = 3e-3
    finetune_steps: int = 100
    finetune_batch: int = 32
    finetune_lr: float = 3e-3


def smoke(cfg: TransferConfig) -> TransferConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        seeds=2,
        budgets=(cfg.budgets[0], cfg.budgets[-1]),
        pretrain_steps=10,
        finetune_steps=5,
    )


CONFIGS = Profiles(
    {
        "cpu": TransferConfig(),
        # More seeds and budgets (up to the whole label pool) for tighter error bars. The models
        # stay this small on purpose: the chapter is about the protocol, and a bag-of-words
        # network is faster on CPU cores than on a GPU, where kernel launches dominate.
        "gpu": TransferConfig(seeds=10, budgets=(10, 20, 50, 100, 200, 400, 600)),
    },
    smoke=smoke,
)

# The source tasks of the chapter: name -> (loader, text column, what it is).
SOURCES: dict[str, tuple[str, str, str]] = {
    "sst2": ("sst2", "sentence", "SST-2 movie-review sentiment (related task, other domain)"),
    "ag_news": ("ag_news", "text", "AG News topic classification (unrelated task and domain)"),
}


@dataclass
class Task:
    """An encoded classification task: token ids ``x`` (n, max_len), labels ``y`` (n,), the
    texts."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    tokens: list[list[str]]
    sentences: list[str]


@dataclass
class Setting:
    """The encoded sources and target of the chapter, over one shared vocabulary."""

    vocab: Vocab
    sources: dict[str, Task]
    target: Task
    test_idx: np.ndarray  # fixed target test rows
    pool_idx: np.ndarray  # target rows from which label budgets are drawn
    # held-out rows of a source task (SST-2's validation split), to measure forgetting
    source_tests: dict[str, Task] = field(default_factory=dict)


def prepare(cfg: TransferConfig, data_dir=None) -> Setting:
    """Load SST-2, AG News and the target UCI domain, build one vocabulary, encode everything.

    The vocabulary counts words in all texts (never labels), so every model shares it; a word seen
    only in target sentences keeps its random embedding in every condition alike. A source's
    validation split, where it has one (SST-2: 872 sentences), is encoded as ``source_tests``; it
    does not enter the vocabulary (its unseen words become ``<unk>``).
    """
    raw: dict[str, tuple[list[str], list[int], int]] = {}
    held_out: dict[str, tuple[list[str], list[int]]] = {}
    for name, (loader, column, _) in SOURCES.items():
        splits = data.load(loader, data_dir=data_dir)
        ds = splits["train"]
        raw[name] = (ds[column], ds["label"], ds.features["label"].num_classes)
        if "validation" in splits:
            held_out[name] = (splits["validation"][column], splits["validation"]["label"])
    tgt = data.load_uci_sentiment(cfg.target, data_dir=data_dir)
    raw["target"] = (tgt["sentence"], tgt["label"], 2)
    tokens = {name: [tokenize(t) for t in texts] for name, (texts, _, _) in raw.items()}
    # One vocabulary for every model, so that "scratch" and "transferred" differ only in their
    # weights.
    vocab = Vocab.build((t for toks in tokens.values() for t in toks), min_count=cfg.min_count)
    tasks = {
        name: Task(
            name,
            vocab.encode_batch(tokens[name], cfg.max_len),
            torch.tensor(labels),
            n,
            tokens[name],
            texts,
        )
        for name, (texts, labels, n) in raw.items()
    }
    target = tasks.pop("target")
    test_idx, pool_idx = data.stratified_split(target.y.numpy(), cfg.test_size, seed=0)
    source_tests = {}
    for name, (texts, labels) in held_out.items():
        toks = [tokenize(t) for t in texts]
        source_tests[name] = Task(
            f"{name} (validation)",
            vocab.encode_batch(toks, cfg.max_len),
            torch.tensor(labels),
            tasks[name].n_classes,
            toks,
            texts,
        )
    return Setting(vocab, tasks, target, test_idx, pool_idx, source_tests)


def pretrain_source(
    setting: Setting, source: str, cfg: TransferConfig, progress: bool = True
) -> BagOfWords:
    """Train a :class:`BagOfWords` on the whole source task, or load it from the artefact cache."""
    task = setting.sources[source]
    key = {"source": source, "vocab": len(setting.vocab), "rows": len(task.y), **asdict(cfg)}
    for k in ("budgets", "seeds", "test_size", "finetune_steps", "finetune_batch", "finetune_lr"):
        key.pop(k)  # fine-tuning settings do not change the source model

    def build() -> BagOfWords:
        return BagOfWords(
            len(setting.vocab), setting.vocab.pad_id, task.n_classes, cfg.dim, cfg.hidden
        )

    def train(model: BagOfWords) -> dict:
        start = time.perf_counter()
        batches = random_batches(
            task.x,
            task.y,
            batch_size=cfg.pretrain_batch,
            generator=torch.Generator().manual_seed(0),
        )
        hist = fit(
            model,
            batches,
            classification_loss,
            steps=cfg.pretrain_steps,
            lr=cfg.pretrain_lr,
            progress=progress,
            desc=f"pretrain on {source}",
        )
        return {
            "final_loss": float(np.mean(hist.loss[-50:])),
            "seconds": time.perf_counter() - start,
        }

    with seeded(0):  # the init and the training's draws, as one stream
        model, _ = hub.cached_module(f"ch01-{source}", key, build, train, verbose=progress)
    return model.eval()


# The conditions of the learning-curve experiment: (name, source or None, freeze body?), and an
# optional fourth entry, keep the source head? (default False: a new head, the usual protocol).
# Keeping the head is possible only when source and target share their labels (SST-2 and amazon).
CONDITIONS: tuple[tuple, ...] = (
    ("scratch", None, False),
    ("SST-2, fine-tuned", "sst2", False),
    ("SST-2, fine-tuned, head kept", "sst2", False, True),
    ("SST-2, frozen", "sst2", True),
    ("AG News, fine-tuned", "ag_news", False),
    ("AG News, frozen", "ag_news", True),
)


def budget_rows(setting: Setting, budget: int, seed: int) -> np.ndarray:
    """The target rows labelled at ``budget`` for ``seed``: the first ``budget`` rows of the seed's
    class-balanced order of the label pool (nested across budgets; exercise 1.2)."""
    pool_labels = setting.target.y.numpy()[setting.pool_idx]
    return setting.pool_idx[data.label_budget_indices(pool_labels, [budget], seed=seed)[budget]]


def _target_model(
    setting: Setting,
    sources: Mapping[str, BagOfWords],
    cfg: TransferConfig,
    source: str | None,
    freeze: bool,
    keep_head: bool,
) -> BagOfWords:
    model = transfer_model(
        sources[source] if source else None, 2, setting.vocab, cfg.dim, cfg.hidden, freeze
    )
    if keep_head:
        if source is None or sources[source].head.out_features != 2:
            raise ValueError(
                f"keeping the head needs a source with the target's 2 labels, got {source!r}."
            )
        model.head.load_state_dict(sources[source].head.state_dict())
    return model


def learning_curves(
    setting: Setting,
    sources: Mapping[str, BagOfWords],
    cfg: TransferConfig,
    conditions: Sequence[tuple] = CONDITIONS,
    features: Mapping[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Target accuracy for every condition x label budget x seed, as a list of records.

    ``conditions`` are ``(name, source, freeze)`` or ``(name, source, freeze, keep_head)`` (see
    ``CONDITIONS``). ``features`` adds conditions whose body is an external frozen encoder:
    ``name -> (n, d)`` features of the target sentences, on which only a linear head is trained.
    For each seed the budgets are nested subsets of the target pool
    (:func:`tlcourse.data.label_budget_indices`), and all conditions see the same labelled rows.

    Where the source has held-out rows (``setting.source_tests``) and the target's label set, the
    record also has ``source_accuracy``: the trained model on the source task after training on
    the target (catastrophic forgetting), with its own head when the source head was kept, else
    with the source head put back on the trained body.
    """
    features = dict(features or {})
    n_runs = cfg.seeds * len(cfg.budgets) * (len(conditions) + len(features))
    bar = progress_bar(total=n_runs, desc="learning curves", progress=progress)
    target, records = setting.target, []
    pool_labels = target.y.numpy()[setting.pool_idx]
    te = torch.as_tensor(setting.test_idx)
    for seed in range(cfg.seeds):
        subsets = data.label_budget_indices(pool_labels, cfg.budgets, seed=seed)
        for budget in cfg.budgets:
            tr = torch.as_tensor(setting.pool_idx[subsets[budget]])
            for condition in conditions:
                name, source, freeze = condition[:3]
                keep_head = len(condition) > 3 and bool(condition[3])
                with seeded(seed):  # the new head's init and the run's draws
                    model = _target_model(setting, sources, cfg, source, freeze, keep_head)
                    acc = finetune_eval(
                        model,
                        (target.x[tr], target.y[tr]),
                        (target.x[te], target.y[te]),
                        steps=cfg.finetune_steps,
                        batch_size=cfg.finetune_batch,
                        lr=cfg.finetune_lr,
                        seed=seed,
                    )
                record = {"condition": name, "budget": budget, "seed": seed, "accuracy": acc}
                held = setting.source_tests.get(source) if source else None
                if held is not None and sources[source].head.out_features == 2:
                    head = model.head if keep_head else sources[source].head
                    with torch.no_grad():
                        record["source_accuracy"] = accuracy(head(model.body(held.x)), held.y)
                records.append(record)
                bar.update()
            for name, feats in features.items():
                with seeded(seed):
                    acc = finetune_eval(
                        nn.Linear(feats.shape[1], 2),
                        (feats[tr], target.y[tr]),
                        (feats[te], target.y[te]),
                        steps=cfg.finetune_steps,
                        batch_size=cfg.finetune_batch,
                        lr=cfg.finetune_lr,
                        seed=seed,
                    )
                records.append({"condition": name, "budget": budget, "seed": seed, "accuracy": acc})
                bar.update()
    bar.close()
    return records


def target_accuracy(model: nn.Module, setting: Setting) -> float:
    """Accuracy of ``model`` (with its own head) on the fixed target test rows."""
    te = torch.as_tensor(setting.test_idx)
    with torch.no_grad():
        return accuracy(model(setting.target.x[te]), setting.target.y[te])


def zero_shot_accuracy(source: BagOfWords, setting: Setting) -> float:
    """The source model *with its own head* on the target test rows, before any target label
    (possible only when source and target share their labels)."""
    return target_accuracy(source, setting)


def source_accuracy(model: nn.Module, setting: Setting, source: str = "sst2") -> float:
    """Accuracy of ``model`` (with its own head) on the held-out rows of a source task (SST-2's
    validation split): before and after fine-tuning on the target, it measures forgetting."""
    held = setting.source_tests[source]
    with torch.no_grad():
        return accuracy(model(held.x), held.y)


__all__ = [
    "CONDITIONS",
    "CONFIGS",
    "SOURCES",
    "Setting",
    "Task",
    "TransferConfig",
    "budget_rows",
    "learning_curves",
    "mean_se",
    "prepare",
    "pretrain_source",
    "seed_table",
    "source_accuracy",
    "target_accuracy",
    "zero_shot_accuracy",
]
