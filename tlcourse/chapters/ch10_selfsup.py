"""Chapter 10: the experiments — self-supervised pretraining of a small conv net and a tiny BERT.

Images: the same conv net (``conv4``) is pretrained on the unlabelled characters of Omniglot's
``background_small1`` alphabets by nothing, rotation prediction, SimCLR, or supervised
classification, and transferred to characters of *other* alphabets (those of ``background_small2``
that ``background_small1`` lacks, :func:`new_characters`):
nearest prototype on the frozen features, a linear probe, and fine-tuning, on the same episodes
for every encoder and seed.

Text: SimCSE (dropout as the augmentation) continues chapter 4's MLM-pretrained tiny BERT on the
course corpus; its sentence vectors are compared with the MLM model's, an untrained BERT's and
MiniLM's by nearest neighbours and a linear probe on AG News topics.

* :class:`SelfSupervisedChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`pretrained_encoder`: one conv net pretrained by one method (cached artefact);
* :func:`test_episodes`, :func:`episode_accuracies`, :func:`finetune_accuracies`: the transfer
  measures on shared episodes; :func:`image_runs` runs the grid;
* :func:`simcse_bert`, :func:`text_scores`: the text experiment.
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch
import torch.nn.functional as F

from ..config import Profiles
from .. import hub, mlm, text, wordpiece
from ..data import load_ag_news, load_omniglot
from ..episodes import Episodes, omniglot_images
from ..features import mean_pool
from ..meta import conv4, fit_linear_heads, prototypes
from ..ssl import ProjectionHead, info_nce, pretrain, rotation_loss, simclr_loss, supervised_loss
from ..train import adamw, progress_bar, seeded

METHODS = ("none", "rotation", "SimCLR", "supervised")
PRETRAIN_PART, TEST_PART = "background_small1", "background_small2"


@functools.lru_cache(maxsize=1)
def new_characters() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The transfer task: the characters of ``background_small2`` whose alphabets are not in
    ``background_small1`` (the two minimal sets share Greek and Latin, with the very same images,
    so those are left out). Returns ``(images, labels, alphabets kept)``."""
    seen = set(load_omniglot(PRETRAIN_PART)["alphabet"])
    alphabets = load_omniglot(TEST_PART)["alphabet"]
    keep = torch.tensor([a not in seen for a in alphabets])
    images, labels = omniglot_images(TEST_PART)
    return images[keep], labels[keep], sorted(set(alphabets) - seen)


@dataclass(frozen=True)
class SelfSupervisedChapterConfig:
    """Sizes of chapter 10 for one profile."""

    channels: int = 32  # conv4 width: the features are this many numbers
    steps: int = 100  # pretraining steps, every method
    # images through the network per step, the same compute for every method: SimCLR draws half as
    # many (two views of each), rotation a quarter (four turns of each)
    batch: int = 128
    lr: float = 3e-3
    temperature: float = 0.5
    # SimCLR's views: random crops and small turns. Thicker or thinner pens and cut-out squares
    # (also in ``ssl.AUGMENTATIONS``) made the features worse on these characters; the knob
    # experiment shows it
    augmentations: tuple[str, ...] = ("crop", "rotate")
    seeds: int = 3
    episodes: int = 200  # shared test episodes per measure
    ways: tuple[int, ...] = (5, 20)  # nearest-prototype, 1-shot
    queries: int = 5  # query images per class in a test episode
    probe_shots: int = 5  # linear probe and fine-tuning: 5-way, this many shots
    probe_episodes: int = 100
    finetune_episodes: int = 20
    finetune_steps: int = 10
    finetune_lr: float = 1e-3
    # the knobs of SimCLR, one seed (the default setting is the headline's seed 0, from the cache);
    # the batch sizes at the same compute: batch x steps fixed, as at a fixed number of epochs
    temperatures: tuple[float, ...] = (0.1, 0.5, 1.0)
    knob_batches: tuple[int, ...] = (16, 128)
    # text: SimCSE on the course corpus from chapter 4's tiny BERT
    # chapter 4's recipe for this profile, so that its cached tokenizer and model are reused
    corpus_words: int | None = 0
    bert_vocab: int = 8000
    bert: mlm.TinyBertConfig = field(
        default_factory=lambda: mlm.TinyBertConfig(max_len=64, batch=32, steps=700, lr=2e-3)
    )
    simcse_steps: int = 100
    simcse_batch: int = 64
    simcse_lr: float = 1e-4
    simcse_temperature: float = 0.05  # Gao et al. 2021's
    simcse_max_len: int = 32
    text_train: int = 500  # AG News sentences: probe training set and neighbour pool
    text_test: int = 500


def smoke(cfg: SelfSupervisedChapterConfig) -> SelfSupervisedChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        steps=4,
        batch=64,
        seeds=2,
        episodes=10,
        probe_episodes=5,
        finetune_episodes=2,
        finetune_steps=2,
        corpus_words=0 if cfg.corpus_words == 0 else 20_000,
        bert=replace(cfg.bert, steps=5, warmup=1),
        simcse_steps=3,
        text_train=100,
        text_test=100,
    )


CONFIGS = Profiles(
    {
        "cpu": SelfSupervisedChapterConfig(),
        "gpu": SelfSupervisedChapterConfig(
            channels=64,
            steps=2000,
            lr=1e-3,
            batch=256,
            seeds=5,
            episodes=1000,
            probe_episodes=1000,
            finetune_episodes=200,
            finetune_steps=20,
            temperatures=(0.05, 0.1, 0.2, 0.5, 1.0),
            knob_batches=(32, 128, 256, 512),
            corpus_words=None,
            bert_vocab=30_522,
            bert=mlm.TinyBertConfig(max_len=64, batch=128, steps=20_000, lr=1e-3),
            simcse_steps=1000,
            text_train=4000,
            text_test=4000,
        ),
    },
    smoke=smoke,
)


# --------------------------------------------------------------------------------------------
# Images: pretraining


def pretrained_encoder(
    method: str,
    cfg: SelfSupervisedChapterConfig,
    seed: int,
    device="cpu",
    temperature: float | None = None,
    batch: int | None = None,
    steps: int | None = None,
    ops: tuple[str, ...] | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """A ``conv4(cfg.channels)`` encoder pretrained on ``background_small1`` by ``method`` (one of
    :data:`METHODS`; ``"none"`` is the random initialisation), cached. ``temperature``, ``batch``,
    ``steps`` and the augmentations ``ops`` override the profile's SimCLR settings (the knobs).
    ``batch`` counts the images that go through the network per step, so every method gets the
    same compute: rotation draws ``batch / 4`` images and turns each four times, SimCLR draws
    ``batch / 2`` and makes two views of each.
    Returns the encoder and ``meta`` (seconds, loss per step)."""
    if method not in METHODS:
        raise ValueError(f"pretrained_encoder: unknown method {method!r}; use one of {METHODS}.")
    temperature = cfg.temperature if temperature is None else temperature
    batch, steps = batch or cfg.batch, steps or cfg.steps
    ops = cfg.augmentations if ops is None else tuple(ops)
    images, labels = omniglot_images(PRETRAIN_PART)
    key = {
        "method": method,
        "channels": cfg.channels,
        "steps": steps,
        "batch": batch,
        "lr": cfg.lr,
        "seed": seed,
        "images": len(images),
        **({"temperature": temperature, "ops": ops} if method == "SimCLR" else {}),
    }
    heads = {
        "rotation": lambda: torch.nn.Linear(cfg.channels, 4),
        "SimCLR": lambda: ProjectionHead(cfg.channels),
        "supervised": lambda: torch.nn.Linear(cfg.channels, int(labels.max()) + 1),
    }
    losses = {
        "rotation": rotation_loss,
        "SimCLR": simclr_loss(temperature, ops),
        "supervised": supervised_loss,
    }

    def build() -> torch.nn.Module:
        with seeded(seed):
            return conv4(cfg.channels)

    def train(encoder) -> dict:
        if method == "none":
            return {"seconds": 0.0, "loss": []}
        with seeded(seed):
            head = heads[method]()
        start = time.perf_counter()
        history = pretrain(
            encoder,
            head,
            losses[method],
            images,
            steps,
            batch=batch // {"rotation": 4, "SimCLR": 2}.get(method, 1),
            lr=cfg.lr,
            seed=seed,
            device=device,
            progress=progress,
            labels=labels if method == "supervised" else None,
        )
        return {"seconds": time.perf_counter() - start, "loss": history}

    name = f"ch10-{method.lower()}"
    encoder, meta = hub.cached_module(name, key, build, train, verbose=False)
    return encoder.eval(), meta


# --------------------------------------------------------------------------------------------
# Images: transfer to new alphabets


@torch.no_grad()
def frozen_features(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The encoder's features of ``images``, computed in one batch (its batch-norm statistics are
    those of the whole test set), L2-normalised."""
    return F.normalize(encoder.eval()(images), dim=1)


def test_episodes(
    cfg: SelfSupervisedChapterConfig, n_way: int, k_shot: int, count: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` seeded ``n_way``-way ``k_shot``-shot episodes of :func:`new_characters` as image
    indices ``(support, query)``: every encoder is scored on the very same draws."""
    images, labels, _ = new_characters()
    episodes = Episodes(images, labels, n_way, k_shot, cfg.queries)
    g = torch.Generator().manual_seed(seed)
    return [episodes.sample_indices(g) for _ in range(count)]


def _episode_labels(n_way: int, per_class: int) -> torch.Tensor:
    return torch.arange(n_way).repeat_interleave(per_class)


def episode_accuracies(
    features: torch.Tensor, episodes, n_way: int, k_shot: int, rule: str, queries: int
) -> list[float]:
    """Accuracy on each episode of a frozen-feature classifier: ``rule`` is ``"prototype"``
    (nearest class mean, Snell et al. 2017, eq. 1; no training) or ``"probe"`` (logistic
    regression on the support features, :func:`tlcourse.meta.fit_linear_heads`)."""
    if rule not in ("prototype", "probe"):
        raise ValueError(f"episode_accuracies: unknown rule {rule!r}; use 'prototype' or 'probe'.")
    ys, yq = _episode_labels(n_way, k_shot), _episode_labels(n_way, queries)
    support = torch.stack([features[s] for s, _ in episodes])
    query = torch.stack([features[q] for _, q in episodes])
    if rule == "prototype":
        protos = torch.stack([prototypes(s, ys, n_way) for s in support])
        logits = -torch.cdist(query, protos)
    else:
        w, b = fit_linear_heads(support, ys.expand(len(episodes), -1), n_way, c=10.0, max_iter=100)
        logits = torch.einsum("eqd,ekd->eqk", query, w) + b[:, None]
    return (logits.argmax(-1) == yq).float().mean(1).tolist()


def finetune_accuracies(
    encoder: torch.nn.Module, episodes, cfg: SelfSupervisedChapterConfig, device="cpu"
) -> list[float]:
    """Fine-tuning on each episode: a copy of the encoder and a new linear head, initialised from
    the support prototypes (the head a nearest-prototype rule would be), trained together for
    ``cfg.finetune_steps`` Adam steps on the support images; accuracy on the queries."""
    images = new_characters()[0]
    n_way, k = 5, cfg.probe_shots
    ys, yq = _episode_labels(n_way, k).to(device), _episode_labels(n_way, cfg.queries).to(device)
    out = []
    for support, query in episodes:
        net = copy.deepcopy(encoder).to(device).train()
        xs, xq = images[support].to(device), images[query].to(device)
        with torch.no_grad():
            protos = prototypes(F.normalize(net(xs), dim=1), ys, n_way)
        head = torch.nn.Linear(protos.shape[1], n_way).to(device)
        with torch.no_grad():
            head.weight.copy_(10 * protos)  # cosine logits at the scale of a temperature of 0.1
            head.bias.zero_()
        opt = adamw([*net.parameters(), *head.parameters()], lr=cfg.finetune_lr, weight_decay=0.0)
        for _ in range(cfg.finetune_steps):
            loss = F.cross_entropy(head(F.normalize(net(xs), dim=1)), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out.append((head(F.normalize(net(xq), dim=1)).argmax(1) == yq).float().mean().item())
    return out


def image_runs(
    cfg: SelfSupervisedChapterConfig, device="cpu", progress: bool = True
) -> tuple[pd.DataFrame, dict]:
    """Every method x seed: pretrain (or load), then the transfer measures on shared episodes.
    Returns one row per (method, seed, measure) with the mean episode accuracy, and the encoders'
    pretraining losses of seed 0 (for the plot)."""
    images = new_characters()[0]
    shots = {f"prototype {w}-way 1-shot": (w, 1, "prototype") for w in cfg.ways}
    shots[f"linear probe 5-way {cfg.probe_shots}-shot"] = (5, cfg.probe_shots, "probe")
    count = {"prototype": cfg.episodes, "probe": cfg.probe_episodes}
    drawn = {m: test_episodes(cfg, w, k, count[r]) for m, (w, k, r) in shots.items()}
    tune = test_episodes(cfg, 5, cfg.probe_shots, cfg.finetune_episodes, seed=1)
    rows, losses = [], {}
    grid = [(m, s) for s in range(cfg.seeds) for m in METHODS]
    for method, seed in progress_bar(grid, desc="methods x seeds", progress=progress):
        encoder, meta = pretrained_encoder(method, cfg, seed, device, progress=False)
        if seed == 0:
            losses[method] = meta["loss"]
        features = frozen_features(encoder, images)
        for measure, (w, k, rule) in shots.items():
            acc = episode_accuracies(features, drawn[measure], w, k, rule, cfg.queries)
            rows.append(dict(method=method, seed=seed, measure=measure, accuracy=_mean(acc)))
        acc = finetune_accuracies(encoder, tune, cfg, device)
        measure = f"fine-tuned 5-way {cfg.probe_shots}-shot"
        rows.append(dict(method=method, seed=seed, measure=measure, accuracy=_mean(acc)))
    return pd.DataFrame(rows), losses


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def knob_runs(
    cfg: SelfSupervisedChapterConfig, knob: str, device="cpu", progress: bool = True
) -> pd.DataFrame:
    """SimCLR with one setting changed at a time, seed 0, scored by nearest prototype on the
    20-way 1-shot episodes. ``knob`` is ``"temperature"``; ``"batch"``, the images through the
    network per step (``batch / 2`` images, so ``batch - 2`` negatives per view), with the steps
    scaled so that every run sees as many images; or ``"augmentations"``: the profile's, each of
    them left out, and all of :data:`tlcourse.ssl.AUGMENTATIONS`."""
    from ..ssl import AUGMENTATIONS

    base = cfg.augmentations
    views = [base, *(tuple(a for a in base if a != left) for left in base if len(base) > 1)]
    views.append(tuple(AUGMENTATIONS))
    settings = {
        "temperature": [dict(temperature=t) for t in cfg.temperatures],
        "batch": [dict(batch=b, steps=cfg.steps * cfg.batch // b) for b in cfg.knob_batches],
        "augmentations": [dict(ops=ops) for ops in dict.fromkeys(views)],
    }
    if knob not in settings:
        raise ValueError(f"knob_runs: unknown knob {knob!r}; use one of {list(settings)}.")
    images = new_characters()[0]
    n_way = max(cfg.ways)
    drawn = test_episodes(cfg, n_way, 1, cfg.episodes)
    rows = []
    for s in progress_bar(settings[knob], desc=knob, progress=progress):
        encoder, _ = pretrained_encoder("SimCLR", cfg, 0, device, progress=False, **s)
        acc = episode_accuracies(
            frozen_features(encoder, images), drawn, n_way, 1, "prototype", cfg.queries
        )
        label = {
            "temperature": s.get("temperature"),
            "batch": s.get("batch"),
            "augmentations": " + ".join(s.get("ops", ())),
        }[knob]
        rows.append({knob: label, "accuracy": _mean(acc), "sem": _sem(acc)})
    return pd.DataFrame(rows)


def _sem(values: list[float]) -> float:
    return float(torch.tensor(values).std() / len(values) ** 0.5)


# --------------------------------------------------------------------------------------------
# Text: SimCSE


def chapter4_bert(cfg: SelfSupervisedChapterConfig, progress: bool = True):
    """Chapter 4's WordPiece tokenizer and MLM-pretrained tiny BERT, by chapter 4's recipe (the
    same cache entries, so they load once chapter 4 has run; trained when missing)."""
    texts = text.corpus_texts(extra_words=cfg.corpus_words)
    tokenizer = wordpiece.cached_wordpiece("ch04-wordpiece", texts, cfg.bert_vocab, verbose=False)
    model, _ = mlm.pretrain_mlm("ch04-bert-corpus", tokenizer, texts, cfg.bert, progress=progress)
    return tokenizer, model.bert, texts


def _pooled(model, tokenizer, sentences, max_len: int) -> torch.Tensor:
    batch = tokenizer(
        list(sentences), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
    )
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return mean_pool(hidden.last_hidden_state, batch["attention_mask"])


def simcse_loss(model, tokenizer, sentences, temperature: float, max_len: int) -> torch.Tensor:
    """Unsupervised SimCSE (Gao, Yao & Chen 2021, section 3): each sentence is encoded twice with
    different dropout masks (the model is in training mode); its two vectors are the positive pair
    and the other sentences of the batch the negatives; InfoNCE over cosine similarities divided by
    the temperature."""
    h1 = _pooled(model, tokenizer, sentences, max_len)
    h2 = _pooled(model, tokenizer, sentences, max_len)  # the same text, new dropout masks
    return info_nce(F.normalize(h1, dim=1) @ F.normalize(h2, dim=1).T / temperature)


def simcse_bert(cfg: SelfSupervisedChapterConfig, progress: bool = True, start=None):
    """Chapter 4's tiny BERT trained further by :func:`simcse_loss` on the corpus sentences of five
    words or more, cached. ``start``: :func:`chapter4_bert`'s result when the caller has it (it
    reads and tokenises the whole corpus). Returns ``(tokenizer, encoder, meta)``."""
    tokenizer, bert, texts = start or chapter4_bert(cfg, progress)
    sentences = [s for s in texts if len(s.split()) >= 5]
    key = {
        "start": "ch04-bert-corpus",
        **asdict(cfg.bert),
        "steps": cfg.simcse_steps,
        "batch": cfg.simcse_batch,
        "lr": cfg.simcse_lr,
        "temperature": cfg.simcse_temperature,
        "max_len": cfg.simcse_max_len,
        "sentences": len(sentences),
    }

    def build():
        return copy.deepcopy(bert)

    def train(model) -> dict:
        model.train()
        opt = adamw(model.parameters(), lr=cfg.simcse_lr, weight_decay=0.0)
        g, losses, start = torch.Generator().manual_seed(0), [], time.perf_counter()
        with seeded(0):  # the dropout masks
            for _ in progress_bar(range(cfg.simcse_steps), desc="SimCSE", progress=progress):
                idx = torch.randint(len(sentences), (cfg.simcse_batch,), generator=g).tolist()
                loss = simcse_loss(
                    model,
                    tokenizer,
                    [sentences[i] for i in idx],
                    cfg.simcse_temperature,
                    cfg.simcse_max_len,
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        model.eval()
        return {"seconds": time.perf_counter() - start, "loss": losses}

    model, meta = hub.cached_module("ch10-simcse", key, build, train, verbose=False)
    return tokenizer, model.eval(), meta


@torch.no_grad()
def sentence_vectors(model, tokenizer, sentences, batch: int = 256, max_len: int = 64):
    """Mean-pooled, L2-normalised vectors of ``sentences`` from a tiny BERT in eval mode."""
    model.eval()
    return F.normalize(
        torch.cat(
            [
                _pooled(model, tokenizer, sentences[i : i + batch], max_len)
                for i in range(0, len(sentences), batch)
            ]
        ),
        dim=1,
    )


def ag_news_sample(
    cfg: SelfSupervisedChapterConfig,
) -> tuple[list[str], torch.Tensor, list[str], torch.Tensor]:
    """``cfg.text_train`` AG News training texts and ``cfg.text_test`` test texts (seeded draws)
    with their topic labels."""
    ag = load_ag_news()
    train = ag["train"].shuffle(seed=0).select(range(cfg.text_train))
    test = ag["test"].shuffle(seed=0).select(range(cfg.text_test))
    return (
        list(train["text"]),
        torch.as_tensor(train["label"]),
        list(test["text"]),
        torch.as_tensor(test["label"]),
    )


def text_scores(
    train: torch.Tensor, y_train: torch.Tensor, test: torch.Tensor, y_test: torch.Tensor
) -> dict[str, float]:
    """How well L2-normalised sentence vectors separate topics, without and with labels:
    ``1-NN``/``10-NN`` (the label of the nearest training sentence(s) by cosine similarity, majority
    vote), ``probe`` (logistic regression on the standardised vectors), and the mean cosine
    similarity of two different training sentences (near 1: every sentence points the same way,
    the anisotropy that SimCSE's negatives push apart)."""
    sim = test @ train.T
    top = sim.topk(min(10, len(train)), dim=1).indices
    mu, sd = train.mean(0), train.std(0) + 1e-6
    n_classes = int(y_train.max()) + 1
    w, b = fit_linear_heads(((train - mu) / sd)[None], y_train[None], n_classes, c=0.1)
    probe = ((test - mu) / sd) @ w[0].T + b[0]
    gram = train @ train.T
    n = len(train)
    return {
        "1-NN": (y_train[sim.argmax(1)] == y_test).float().mean().item(),
        "10-NN": (torch.mode(y_train[top], 1).values == y_test).float().mean().item(),
        "probe": (probe.argmax(1) == y_test).float().mean().item(),
        "mean cosine": ((gram.sum() - gram.diagonal().sum()) / (n * (n - 1))).item(),
    }


def untrained_bert(model):
    """A BERT of the same configuration as ``model`` with fresh random weights (seed 0): what the
    encoder knows before any pretraining."""
    with seeded(0):
        return type(model)(model.config).eval()
