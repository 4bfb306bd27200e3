"""Chapter 1: what transfer buys you. Pretrain on a source task, reuse the body on a target task.

The model is deliberately small (a bag-of-words network in the spirit of fastText, Joulin et al.
2017) so that the whole learning-curve experiment of the chapter runs on a laptop CPU in about a
minute; the point is the transfer protocol, which the later chapters repeat with bigger models:

1. pretrain a model on a labelled *source* task ``T_S`` in a source domain ``D_S``;
2. keep its body (the parameters ``theta``), put a fresh head on it for the *target* task;
3. either freeze the body (feature extraction) or fine-tune everything (Pan & Yang 2010's
   *parameter transfer*; Yosinski et al. 2014), on a budget of ``k`` target labels;
4. compare with the same network trained from scratch on the same ``k`` labels.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data, hub
from .text import Vocab, tokenize
from .train import accuracy, fit, progress_bar, random_batches


@dataclass(frozen=True)
class TransferConfig:
    """Sizes of the chapter-1 experiment for one profile (see ``CONFIGS``)."""

    target: str = "amazon"            # UCI sentiment domain used as the target task
    test_size: int = 400              # fixed, class-balanced test split of the target domain
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500)
    seeds: int = 5
    min_count: int = 2                # vocabulary: words seen this often in source + target text
    max_len: int = 48                 # tokens kept per sentence
    dim: int = 64                     # embedding size
    hidden: int = 64                  # body output size (what is transferred)
    pretrain_steps: int = 1000
    pretrain_batch: int = 256
    pretrain_lr: float = 3e-3
    finetune_steps: int = 100
    finetune_batch: int = 32
    finetune_lr: float = 3e-3


CONFIGS: dict[str, TransferConfig] = {
    "cpu": TransferConfig(),
    # More seeds and budgets (up to the whole label pool) for tighter error bars. The models stay
    # this small on purpose: the chapter is about the protocol, and a bag-of-words network is
    # faster on CPU cores than on a GPU, where kernel launches dominate.
    "gpu": TransferConfig(seeds=10, budgets=(10, 20, 50, 100, 200, 400, 600)),
}

# The source tasks of the chapter: name -> (loader, text column, what it is).
SOURCES: dict[str, tuple[str, str, str]] = {
    "sst2": ("sst2", "sentence", "SST-2 movie-review sentiment (related task, other domain)"),
    "ag_news": ("ag_news", "text", "AG News topic classification (unrelated task and domain)"),
}


class BagOfWords(nn.Module):
    """Mean of word embeddings -> ReLU layer (the *body*) -> linear *head*.

    ``body`` is what transfers between tasks; ``head`` is task-specific and replaced.
    """

    def __init__(self, vocab_size: int, pad_id: int, n_classes: int, dim: int = 64, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=pad_id)
        self.hidden = nn.Linear(dim, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def body(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence features: ``relu(W mean_i e_{w_i} + b)`` for a ``(batch, max_len)`` id matrix."""
        return F.relu(self.hidden(self.embed(ids)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(ids))

    def body_parameters(self) -> list[nn.Parameter]:
        return [*self.embed.parameters(), *self.hidden.parameters()]


@dataclass
class Task:
    """An encoded classification task: token ids ``x`` (n, max_len), labels ``y`` (n,), the texts."""

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
    test_idx: np.ndarray   # fixed target test rows
    pool_idx: np.ndarray   # target rows from which label budgets are drawn


def prepare(cfg: TransferConfig, data_dir=None) -> Setting:
    """Load SST-2, AG News and the target UCI domain, build one vocabulary, encode everything.

    The vocabulary counts words in all texts (never labels), so every model shares it; a word seen
    only in target sentences keeps its random embedding in every condition alike.
    """
    raw: dict[str, tuple[list[str], list[int], int]] = {}
    for name, (loader, column, _) in SOURCES.items():
        ds = data.load(loader, data_dir=data_dir)["train"]
        raw[name] = (ds[column], ds["label"], ds.features["label"].num_classes)
    tgt = data.load_uci_sentiment(cfg.target, data_dir=data_dir)
    raw["target"] = (tgt["sentence"], tgt["label"], 2)
    tokens = {name: [tokenize(t) for t in texts] for name, (texts, _, _) in raw.items()}
    # One vocabulary for every model, so that "scratch" and "transferred" differ only in their weights.
    vocab = Vocab.build((t for toks in tokens.values() for t in toks), min_count=cfg.min_count)
    tasks = {
        name: Task(name, vocab.encode_batch(tokens[name], cfg.max_len), torch.tensor(labels), n, tokens[name], texts)
        for name, (texts, labels, n) in raw.items()
    }
    target = tasks.pop("target")
    test_idx, pool_idx = stratified_split(target.y.numpy(), cfg.test_size, seed=0)
    return Setting(vocab, tasks, target, test_idx, pool_idx)


def stratified_split(labels: np.ndarray, test_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(test, rest)``: a class-balanced ``test`` of ``test_size`` rows and all other rows."""
    rng = np.random.default_rng(seed)
    order = label_order(labels, rng)
    return np.sort(order[:test_size]), np.sort(order[test_size:])


def label_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of row indices that interleaves the classes (round robin over shuffled classes).

    Any prefix of it is class-balanced, which is what makes label budgets nested *and* balanced.
    """
    labels = np.asarray(labels)
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    for rank in range(max(len(p) for p in per_class)):
        order.extend(int(p[rank]) for p in per_class if rank < len(p))
    return np.asarray(order, dtype=np.int64)


def label_budget_indices(labels: Sequence[int], budgets: Iterable[int], seed: int) -> dict[int, np.ndarray]:
    """Row indices for each label budget: class-balanced (counts differ by at most one), nested
    (a smaller budget is a subset of a larger one), and reproducible for a given ``seed``.

    Nesting means a learning curve measures *more labels*, not *different labels* (exercise 1.2).
    """
    labels = np.asarray(labels)
    budgets = list(budgets)
    if any(b <= 0 or b > len(labels) for b in budgets):
        raise ValueError(f"label budgets must lie in 1..{len(labels)} (the number of rows), got {budgets}.")
    order = label_order(labels, np.random.default_rng(seed))
    return {b: order[:b].copy() for b in budgets}


def unigram_js_divergence(texts_a: Iterable[Sequence[str]], texts_b: Iterable[Sequence[str]]) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) between the unigram distributions of two corpora.

    JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2 (Lin 1991): a symmetric, bounded
    distance between the marginals P(X) of two domains, used by Ruder & Plank (2017) to choose
    transfer sources. 0 means the same word distribution; 1 means no word in common.
    """
    ca, cb = Counter(), Counter()
    for t in texts_a:
        ca.update(t)
    for t in texts_b:
        cb.update(t)
    na, nb = sum(ca.values()), sum(cb.values())
    if na == 0 or nb == 0:
        raise ValueError("unigram_js_divergence: a corpus has no tokens.")
    words = sorted(set(ca) | set(cb))
    p = np.array([ca[w] / na for w in words])
    q = np.array([cb[w] / nb for w in words])
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0  # 0 log 0 = 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def pretrain_source(setting: Setting, source: str, cfg: TransferConfig, progress: bool = True) -> BagOfWords:
    """Train a :class:`BagOfWords` on the whole source task, or load it from the artefact cache."""
    task = setting.sources[source]
    key = {"source": source, "vocab": len(setting.vocab), "rows": len(task.y), **asdict(cfg)}
    for k in ("budgets", "seeds", "test_size", "finetune_steps", "finetune_batch", "finetune_lr"):
        key.pop(k)  # fine-tuning settings do not change the source model

    def build() -> BagOfWords:
        torch.manual_seed(0)
        return BagOfWords(len(setting.vocab), setting.vocab.pad_id, task.n_classes, cfg.dim, cfg.hidden)

    def train(model: BagOfWords) -> dict:
        start = time.perf_counter()
        batches = random_batches(task.x, task.y, batch_size=cfg.pretrain_batch, generator=torch.Generator().manual_seed(0))
        hist = fit(model, batches, _loss, steps=cfg.pretrain_steps, lr=cfg.pretrain_lr, progress=progress,
                   desc=f"pretrain on {source}")
        return {"final_loss": float(np.mean(hist.loss[-50:])), "seconds": time.perf_counter() - start}

    model, _ = hub.cached_module(f"ch01-{source}", key, build, train, verbose=progress)
    return model.eval()


def transfer_model(source: BagOfWords | None, n_classes: int, vocab: Vocab, cfg: TransferConfig,
                   freeze: bool = False) -> BagOfWords:
    """A target model: the source's body (copied) with a new head, or a fresh model when ``source`` is None.

    ``freeze=True`` makes the body a fixed feature extractor; only the head is then trained.
    """
    model = BagOfWords(len(vocab), vocab.pad_id, n_classes, cfg.dim, cfg.hidden)
    if source is not None:
        model.embed.load_state_dict(source.embed.state_dict())
        model.hidden.load_state_dict(source.hidden.state_dict())
    if freeze:
        if source is None:
            raise ValueError("freeze=True needs a source model: freezing a random body is not transfer.")
        for p in model.body_parameters():
            p.requires_grad_(False)
    return model


def finetune_eval(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                  *, steps: int, batch_size: int, lr: float, seed: int) -> float:
    """Train the trainable parameters of ``model`` on ``train = (x, y)``; return its accuracy on ``test``.

    Minibatches are drawn with a generator seeded by ``seed``, so a run is reproducible.
    """
    batches = random_batches(*train, batch_size=batch_size, generator=torch.Generator().manual_seed(seed))
    fit(model, batches, _loss, steps=steps, lr=lr, progress=False)
    with torch.no_grad():
        return accuracy(model(test[0]), test[1])


# The conditions of the learning-curve experiment: (name, source or None, freeze body?)
CONDITIONS: tuple[tuple[str, str | None, bool], ...] = (
    ("scratch", None, False),
    ("SST-2, fine-tuned", "sst2", False),
    ("SST-2, frozen", "sst2", True),
    ("AG News, fine-tuned", "ag_news", False),
    ("AG News, frozen", "ag_news", True),
)


def learning_curves(setting: Setting, sources: Mapping[str, BagOfWords], cfg: TransferConfig,
                    conditions: Sequence[tuple[str, str | None, bool]] = CONDITIONS,
                    features: Mapping[str, torch.Tensor] | None = None, progress: bool = True) -> list[dict]:
    """Target accuracy for every condition x label budget x seed, as a list of records.

    ``features`` adds conditions whose body is an external frozen encoder: ``name -> (n, d)``
    features of the target sentences, on which only a linear head is trained. For each seed the
    budgets are nested subsets of the target pool (:func:`label_budget_indices`), and all
    conditions see the same labelled rows.
    """
    features = dict(features or {})
    n_runs = cfg.seeds * len(cfg.budgets) * (len(conditions) + len(features))
    bar = progress_bar(total=n_runs, desc="learning curves", progress=progress)
    target, records = setting.target, []
    pool_labels = target.y.numpy()[setting.pool_idx]
    for seed in range(cfg.seeds):
        subsets = label_budget_indices(pool_labels, cfg.budgets, seed=seed)
        for budget in cfg.budgets:
            train_idx = setting.pool_idx[subsets[budget]]
            runs = [(name, lambda s=source, f=freeze: transfer_model(sources[s] if s else None, 2, setting.vocab, cfg, f),
                     target.x) for name, source, freeze in conditions]
            runs += [(name, lambda d=feats.shape[1]: nn.Linear(d, 2), feats) for name, feats in features.items()]
            tr, te = torch.as_tensor(train_idx), torch.as_tensor(setting.test_idx)
            for name, make, x in runs:
                torch.manual_seed(seed)
                acc = finetune_eval(make(), (x[tr], target.y[tr]), (x[te], target.y[te]), steps=cfg.finetune_steps,
                                    batch_size=cfg.finetune_batch, lr=cfg.finetune_lr, seed=seed)
                records.append({"condition": name, "budget": budget, "seed": seed, "accuracy": acc})
                bar.update()
    bar.close()
    return records


def summarize(records: list[dict], key: str = "accuracy") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``condition -> (mean over seeds, std over seeds)`` per budget, budgets in increasing order."""
    budgets = sorted({r["budget"] for r in records})
    out = {}
    for cond in dict.fromkeys(r["condition"] for r in records):
        vals = [[r[key] for r in records if r["condition"] == cond and r["budget"] == b] for b in budgets]
        out[cond] = (np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals]))
    return out


def zero_shot_accuracy(source: BagOfWords, setting: Setting) -> float:
    """The source model *with its own head* on the target test rows (possible only when labels match)."""
    te = torch.as_tensor(setting.test_idx)
    with torch.no_grad():
        return accuracy(source(setting.target.x[te]), setting.target.y[te])


def parameter_share(model: BagOfWords) -> float:
    """Fraction of parameters in the body (what transfer reuses)."""
    body = sum(p.numel() for p in model.body_parameters())
    return body / sum(p.numel() for p in model.parameters())


__all__ = [
    "BagOfWords", "CONDITIONS", "CONFIGS", "SOURCES", "Setting", "Task", "TransferConfig",
    "finetune_eval", "label_budget_indices", "label_order", "learning_curves", "parameter_share", "prepare",
    "pretrain_source", "stratified_split", "summarize", "transfer_model", "unigram_js_divergence",
    "zero_shot_accuracy",
]
