"""Chapter 7: the experiments — sinusoid regression with MAML, first-order MAML, Reptile and a
jointly pretrained baseline; Omniglot few-shot classification with Prototypical Networks,
first-order MAML and a transfer baseline (a classifier pretrained on all training classes, a new
head fitted on the support set).

* :class:`MetaChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`sinusoid_learners` meta-trains (or loads from the cache) the sinusoid models;
* :func:`omniglot_learners` trains the three Omniglot learners on the same training classes;
* :func:`few_shot_table` evaluates every learner on the same held-out episodes;
* :func:`ag_news_pool` and :func:`text_few_shot` are the text experiment: 4-way K-shot episodes of
  AG News sentences on frozen all-MiniLM-L6-v2 features, prototypes against a logistic-regression
  head fitted on the support set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from ..config import Profiles
from .. import hub
from ..episodes import (
    Episodes,
    accuracy_interval,
    omniglot_images,
    predict,
    proto_loss,
    transfer_accuracies,
    with_rotations,
)
from ..meta import Sinusoids, conv4, fit_linear_heads, meta_train, regressor
from ..train import History, fit, progress_bar, random_batches, seeded


@dataclass(frozen=True)
class SinusoidConfig:
    """Finn et al. (2017) section 5.1: meta-batch 25, inner step 0.01, Adam 1e-3 outside."""

    iterations: int = 3000
    meta_batch: int = 25
    inner_lr: float = 0.01
    inner_steps: int = 1
    meta_lr: float = 1e-3
    reptile_lr: float = 0.02  # Reptile's inner loop: more, larger steps (Nichol et al., sec. 7)
    reptile_steps: int = 5
    test_tasks: int = 200  # new tasks, each with query_points evenly at random in [-5, 5]
    query_points: int = 100
    max_steps: int = 10  # adaptation steps shown at test time


@dataclass(frozen=True)
class OmniglotConfig:
    """Omniglot sizes: the training classes are background_small1 with rotations (544 classes), the
    test classes background_small2 (156 characters, other alphabets) and the 20 official runs."""

    channels: int = 32
    images: int = 72_000  # every learner's budget: images drawn from the training classes
    proto_way: int = 20  # ProtoNets train with more ways than they test (Snell et al. section 3.2)
    train_query: int = 5  # query images per class in a training episode
    maml_batch: int = 4  # first-order MAML: tasks per meta-batch (5-way 1-shot)
    maml_inner_lr: float = 0.4  # Finn et al.'s Omniglot step size
    maml_train_steps: int = 1
    maml_test_steps: int = 5
    maml_meta_lr: float = 3e-3
    transfer_batch: int = 60
    transfer_lr: float = 1e-3
    head_steps: int = 100  # fitting the transfer baseline's new head on the support features
    head_lr: float = 0.1
    test_episodes: int = 100  # 7,500 queries per learner and kind: 95% intervals of about 2 points
    test_query: int = 15


@dataclass(frozen=True)
class TextConfig:
    """AG News few-shot episodes on frozen all-MiniLM-L6-v2 sentence features (mean pooling)."""

    per_class: int = 250  # the fixed pool: sentences per class drawn from AG News's test split
    shots: tuple[int, ...] = (1, 5, 20)
    query: int = 15  # query sentences per class in an episode
    episodes: int = 250  # per K, the same for every learner (paired intervals)
    head_c: tuple[float, ...] = (1.0, 100.0)  # inverse L2 strengths (1: scikit-learn's default)
    seed: int = 0


@dataclass(frozen=True)
class MetaChapterConfig:
    """Sizes of chapter 7 for one profile."""

    shots: tuple[int, ...] = (5, 10)
    sinusoid: SinusoidConfig = field(default_factory=SinusoidConfig)
    omniglot: OmniglotConfig = field(default_factory=OmniglotConfig)
    text: TextConfig = field(default_factory=TextConfig)


def smoke(cfg: MetaChapterConfig) -> MetaChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        sinusoid=replace(cfg.sinusoid, iterations=10, test_tasks=10),
        omniglot=replace(cfg.omniglot, images=2_000, head_steps=5, test_episodes=4),
        text=replace(cfg.text, per_class=40, episodes=10),
    )


CONFIGS = Profiles(
    {
        "cpu": MetaChapterConfig(),
        "gpu": MetaChapterConfig(
            omniglot=OmniglotConfig(channels=64, images=720_000, maml_batch=16, test_episodes=600),
            text=TextConfig(episodes=500),
        ),
    },
    smoke=smoke,
)
SINUSOID_LEARNERS = ("MAML", "first-order MAML", "Reptile", "pretrained")


def sinusoid_stream(k: int, meta_batch: int, seed: int, family: Sinusoids = Sinusoids()):
    """Endless meta-batches of sinusoid episodes, ``k`` support and ``k`` query points per task."""
    g = torch.Generator().manual_seed(seed)
    while True:
        yield family.episodes(meta_batch, k, k, g)


def pretrain_jointly(
    model: torch.nn.Module,
    batches,
    iterations: int,
    lr: float,
    loss: Callable = F.mse_loss,
    progress: bool = True,
    desc: str = "pretrained",
) -> History:
    """The transfer baseline's pretraining: one model fitted to the points of all tasks at once
    (support and query pooled), with Adam. It learns the best *single* function for the family."""

    def pooled(net, batch):
        xs, ys, xq, yq = batch
        return loss(net(torch.cat([xs, xq], 1)), torch.cat([ys, yq], 1))

    return fit(model, batches, pooled, steps=iterations, lr=lr, progress=progress, desc=desc)


def sinusoid_learners(
    cfg: SinusoidConfig, k: int, seed: int = 0, progress: bool = True
) -> dict[str, tuple[torch.nn.Module, dict]]:
    """MAML, first-order MAML, Reptile and the jointly pretrained baseline for ``k``-shot sinusoids,
    each trained on the same stream of tasks (or loaded from the cache); ``name -> (model, meta)``
    where meta holds the training seconds and loss curve."""
    out = {}
    for name in SINUSOID_LEARNERS:
        method = {"MAML": "maml", "first-order MAML": "fomaml", "Reptile": "reptile"}.get(name)
        lr, steps = (
            (cfg.reptile_lr, cfg.reptile_steps)
            if method == "reptile"
            else (cfg.inner_lr, cfg.inner_steps)
        )

        def train(model, method=method, lr=lr, steps=steps, name=name):
            began, stream = time.perf_counter(), sinusoid_stream(k, cfg.meta_batch, seed + 1)
            if method is None:
                history = pretrain_jointly(
                    model, stream, cfg.iterations, cfg.meta_lr, progress=progress
                )
            else:
                history = meta_train(
                    model,
                    stream,
                    method=method,
                    iterations=cfg.iterations,
                    inner_lr=lr,
                    inner_steps=steps,
                    meta_lr=cfg.meta_lr,
                    progress=progress,
                    desc=f"{name}, K={k}",
                )
            return {"seconds": time.perf_counter() - began, "loss": history.loss}

        def build():
            return regressor()

        key = {**asdict(cfg), "k": k, "seed": seed, "learner": name}
        with seeded(seed):  # the init and the training's draws, as one stream
            out[name] = hub.cached_module(
                f"ch07-sinusoid-{method or 'pretrained'}", key, build, train, verbose=False
            )
    return out


# --- Omniglot -------------------------------------------------------------------------------


def omniglot_pools(
    device: torch.device | str = "cpu",
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``train``: background_small1 with rotations as extra classes; ``test``: background_small2 as
    drawn; images and labels on ``device``."""
    pools = {
        "train": with_rotations(*omniglot_images("background_small1")),
        "test": omniglot_images("background_small2"),
    }
    return {
        name: (images.to(device), labels.to(device)) for name, (images, labels) in pools.items()
    }


def omniglot_learners(
    cfg: OmniglotConfig, seed: int = 0, progress: bool = True, device: torch.device | str = "cpu"
) -> dict[str, tuple[torch.nn.Module, dict]]:
    """Train (or load from the cache) ProtoNets, first-order MAML (5-way 1-shot episodes) and the
    transfer baseline on the same training classes, on ``device``; ``name -> (model, meta)`` with
    seconds, images seen and losses."""
    images, labels = omniglot_pools(device)["train"]
    n_classes = int(labels.max()) + 1
    proto_episodes = cfg.images // (cfg.proto_way * (1 + cfg.train_query))
    maml_iterations = cfg.images // (cfg.maml_batch * 5 * (1 + cfg.train_query))

    def protonet(net):
        episodes = Episodes(images, labels, cfg.proto_way, 1, cfg.train_query).stream(
            None, seed + 1
        )
        history = fit(
            net,
            episodes,
            lambda n, episode: proto_loss(n, episode, cfg.proto_way),
            steps=proto_episodes,
            lr=1e-3,
            progress=progress,
            desc="ProtoNet",
        )
        return {
            "loss": history.loss,
            "images": proto_episodes * cfg.proto_way * (1 + cfg.train_query),
        }

    def fomaml(net):
        stream = Episodes(images, labels, 5, 1, cfg.train_query).stream(cfg.maml_batch, seed + 1)
        history = meta_train(
            net,
            stream,
            method="fomaml",
            iterations=maml_iterations,
            inner_lr=cfg.maml_inner_lr,
            inner_steps=cfg.maml_train_steps,
            meta_lr=cfg.maml_meta_lr,
            loss=F.cross_entropy,
            progress=progress,
            desc="first-order MAML",
        )
        return {
            "loss": history.loss,
            "images": maml_iterations * cfg.maml_batch * 5 * (1 + cfg.train_query),
        }

    def transfer(net):
        steps = cfg.images // cfg.transfer_batch
        batches = random_batches(
            images,
            labels,
            batch_size=cfg.transfer_batch,
            generator=torch.Generator().manual_seed(seed + 1),
        )
        history = fit(
            net,
            batches,
            lambda n, batch: F.cross_entropy(n(batch[0]), batch[1]),
            steps=steps,
            lr=cfg.transfer_lr,
            progress=progress,
            desc="transfer: pretraining",
        )
        return {"loss": history.loss, "images": steps * cfg.transfer_batch}

    jobs = {
        "ProtoNet": (None, protonet),
        "first-order MAML": (5, fomaml),
        "transfer": (n_classes, transfer),
    }
    out = {}
    for name, (outputs, train) in jobs.items():

        def build(outputs=outputs):
            return conv4(cfg.channels, outputs).to(device)

        def timed(net, train=train):
            began = time.perf_counter()
            meta = train(net)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize()
            return {**meta, "seconds": time.perf_counter() - began}

        with seeded(seed):  # the init and the training's draws, as one stream
            out[name] = hub.cached_module(
                f"ch07-omniglot-{name.replace(' ', '-')}",
                {**asdict(cfg), "seed": seed, "learner": name},
                build,
                timed,
                verbose=False,
            )
    return out


def few_shot_table(
    learners: dict[str, torch.nn.Module],
    episodes: dict[str, Episodes],
    cfg: OmniglotConfig,
    seed: int = 2,
    progress: bool = True,
) -> pd.DataFrame:
    """Accuracy (mean and 95% interval over ``cfg.test_episodes`` episodes) of every learner on
    every kind of episode; all learners see exactly the same episodes."""
    rows = []
    for kind, source in episodes.items():
        g = torch.Generator().manual_seed(seed)
        drawn = [source.sample(g) for _ in range(cfg.test_episodes)]
        for name, net in learners.items():
            if name == "transfer":
                correct = transfer_accuracies(net, drawn, source.n_way, cfg)
            else:
                correct = [
                    (predict(name, net, xs, ys, xq, source.n_way, cfg) == yq).float().mean().item()
                    for xs, ys, xq, yq in progress_bar(
                        drawn, progress=progress, desc=f"{name}, {kind}", leave=False
                    )
                ]
            mean, half = accuracy_interval(correct)
            rows.append({"episodes": kind, "learner": name, "accuracy": mean, "ci95": half})
    return pd.DataFrame(rows)


# --- AG News: few-shot text classification on frozen sentence features ------------------------


def text_few_shot(
    features: torch.Tensor, labels: torch.Tensor, cfg: TextConfig, seed: int = 1
) -> pd.DataFrame:
    """Accuracy of every episode for ``ProtoNet`` (nearest prototype, Snell et al. eqs. 1-2) and
    ``logistic regression, C=c`` for every ``c`` in ``cfg.head_c`` (a head fitted on the support
    features, :func:`fit_linear_heads`), on ``cfg.episodes`` 4-way K-shot episodes per K; all
    learners see the same episodes. One row per (shots, episode, learner)."""
    rows = []
    n_way = int(labels.max()) + 1
    for k in cfg.shots:
        source = Episodes(features, labels, n_way, k, cfg.query)
        g = torch.Generator().manual_seed(seed)
        drawn = [source.sample_indices(g) for _ in range(cfg.episodes)]
        zs = features[torch.stack([s for s, _ in drawn])]  # (episodes, n_way * k, d)
        zq = features[torch.stack([q for _, q in drawn])]
        ys = torch.arange(n_way).repeat_interleave(k).expand(cfg.episodes, -1)
        yq = torch.arange(n_way).repeat_interleave(cfg.query)
        protos = zs.view(cfg.episodes, n_way, k, -1).mean(2)  # Snell et al. eq. 1, per episode
        predictions = {"ProtoNet": (-torch.cdist(zq, protos).pow(2)).argmax(-1)}
        for c in cfg.head_c:
            w, b = fit_linear_heads(zs, ys, n_way, c)
            logits = torch.einsum("eqd,ekd->eqk", zq, w) + b[:, None]
            predictions[f"logistic regression, C={c:g}"] = logits.argmax(-1)
        for name, predicted in predictions.items():
            correct = (predicted == yq).float().mean(1).tolist()
            rows += [
                {"shots": k, "episode": i, "learner": name, "accuracy": a}
                for i, a in enumerate(correct)
            ]
    return pd.DataFrame(rows)
