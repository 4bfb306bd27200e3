"""Chapter 7: few-shot episodes — N-way K-shot classification tasks drawn from Omniglot (and from
AG News sentences).

A *task* is a choice of N classes; its *episode* gives K labelled examples of each (the support set)
and a few more of each to classify (the query set), relabelled 0..N-1 in a random order, so that a
learner cannot memorise class identities across tasks (Vinyals et al. 2016; Finn et al. 2017).

* :func:`omniglot_images` loads an Omniglot part as a float tensor of 28x28 images, ink = 1;
* :func:`with_rotations` adds the rotations by 90, 180 and 270 degrees as new classes (Santoro
  et al. 2016), the augmentation every Omniglot meta-learning paper uses for its training classes;
* :class:`Episodes` samples episodes from a pool of classes; :func:`one_shot_runs` returns the 20
  official 20-way one-shot runs of Lake et al. (2015);
* :func:`predict` is how each chapter-7 learner (ProtoNet, first-order MAML, transfer) answers an
  episode, :func:`transfer_accuracies` the transfer rule on many episodes at once, and
  :func:`proto_loss` the ProtoNet training loss on one episode;
* :func:`ag_news_pool` is a fixed pool of AG News sentences embedded once by all-MiniLM-L6-v2, to
  draw text episodes from.
"""

from __future__ import annotations

import functools
import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from . import hub
from .data import load_ag_news, load_omniglot
from .features import sentence_features
from .meta import adapt, params_of, proto_logits, prototypes

IMAGE_SIZE = 28


def _shrink(images: np.ndarray, size: int) -> torch.Tensor:
    """105x105 bool ink masks -> ``(n, 1, size, size)`` floats in [0, 1] (area averaging keeps thin
    strokes)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))[:, None]
    return F.adaptive_avg_pool2d(x, size) if size != x.shape[-1] else x


@functools.lru_cache(maxsize=4)
def omniglot_images(part: str, size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """One Omniglot part (see :func:`tlcourse.data.load_omniglot`) as ``(images, labels)``:
    ``(n, 1, size, size)`` floats, ink = 1, and the class index of every image."""
    ds = load_omniglot(part).with_format("numpy")
    return _shrink(ds["image"], size), torch.as_tensor(ds["label"], dtype=torch.long)


def with_rotations(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every class four times: as drawn, and rotated by 90, 180 and 270 degrees, each a class of its
    own (label ``4 c + r``)."""
    turned = [torch.rot90(images, r, dims=(-2, -1)) for r in range(4)]
    return torch.cat(turned), torch.cat([4 * labels + r for r in range(4)])


class Episodes:
    """N-way K-shot episodes from a pool of labelled images.

    ``sample(generator)`` draws ``n_way`` distinct classes and, for each, ``k_shot + n_query``
    distinct images, split into support and query; labels are the classes' positions in the draw
    (0..N-1). ``batch(tasks, generator)`` stacks several episodes, ``(xs, ys, xq, yq)`` each with a
    leading task dimension, the form :func:`tlcourse.meta.meta_gradient` takes.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int, n_query: int
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"Episodes: {images.shape[0]} images but {labels.shape[0]} labels.")
        self.images, self.n_way, self.k_shot, self.n_query = images, n_way, k_shot, n_query
        labels = (
            labels.cpu()
        )  # the bookkeeping stays on the CPU; only the images live on the device
        classes, counts = torch.unique(labels, return_counts=True)
        self.by_class = [torch.nonzero(labels == c).flatten() for c in classes]
        if n_way < 2 or k_shot < 1 or n_query < 1:
            raise ValueError(
                "Episodes: need n_way >= 2, k_shot >= 1, n_query >= 1; "
                f"got {n_way}, {k_shot}, {n_query}."
            )
        if n_way > len(classes):
            raise ValueError(
                f"Episodes: {n_way}-way episodes need {n_way} classes, the pool has {len(classes)}."
            )
        if k_shot + n_query > int(counts.min()):
            raise ValueError(
                f"Episodes: {k_shot} + {n_query} images per class requested, "
                f"but some classes have only {int(counts.min())}; lower k_shot or n_query."
            )

    def __repr__(self) -> str:
        return (
            f"Episodes({self.n_way}-way {self.k_shot}-shot, {self.n_query} queries per class, "
            f"{len(self.by_class)} classes, {len(self.images)} images)"
        )

    def sample_indices(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Image indices of one episode: support ``(n_way * k_shot,)`` and query
        ``(n_way * n_query,)``, class by class (class 0's images first)."""
        chosen = torch.randperm(len(self.by_class), generator=generator)[: self.n_way]
        support, query = [], []
        for c in chosen.tolist():
            pool = self.by_class[c]
            picked = pool[
                torch.randperm(len(pool), generator=generator)[: self.k_shot + self.n_query]
            ]
            support.append(picked[: self.k_shot])
            query.append(picked[self.k_shot :])
        return torch.cat(support), torch.cat(query)

    def sample(
        self, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One episode ``(xs, ys, xq, yq)``."""
        support, query = self.sample_indices(generator)
        ys = torch.arange(self.n_way, device=self.images.device).repeat_interleave(self.k_shot)
        yq = torch.arange(self.n_way, device=self.images.device).repeat_interleave(self.n_query)
        return self.images[support], ys, self.images[query], yq

    def batch(self, tasks: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``tasks`` episodes stacked along a new first dimension."""
        return tuple(
            torch.stack(parts) for parts in zip(*(self.sample(generator) for _ in range(tasks)))
        )

    def stream(self, tasks: int | None, seed: int):
        """An endless, seeded iterator of meta-batches of ``tasks`` episodes (single episodes for
        ``None``)."""
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self.sample(g) if tasks is None else self.batch(tasks, g)


def one_shot_runs(
    size: int = IMAGE_SIZE, device: torch.device | str = "cpu"
) -> list[tuple[torch.Tensor, ...]]:
    """The 20 official 20-way one-shot runs of Lake et al. (2015), each ``(xs, ys, xq, yq)``: one
    exemplar of each of 20 new classes (from alphabets not in the background sets) and 20 queries to
    classify."""
    ds = load_omniglot("one_shot_runs").with_format("numpy")
    images, run, split = _shrink(ds["image"], size), np.asarray(ds["run"]), np.asarray(ds["split"])
    label = torch.as_tensor(ds["label"], dtype=torch.long)
    out = []
    for r in sorted(set(run.tolist())):
        s = torch.from_numpy(np.flatnonzero((run == r) & (split == "training")))
        q = torch.from_numpy(np.flatnonzero((run == r) & (split == "test")))
        out.append(tuple(t.to(device) for t in (images[s], label[s], images[q], label[q])))
    return out


def accuracy_interval(correct: list[float]) -> tuple[float, float]:
    """Mean accuracy over episodes and the half-width of its 95% confidence interval (1.96 standard
    errors), the way few-shot papers report them."""
    values = np.asarray(correct, float)
    if values.size == 0:
        raise ValueError("accuracy_interval: no episodes.")
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(half)


class FewShotSettings(Protocol):
    """What :func:`predict` reads from its ``cfg`` (chapter 7's ``OmniglotConfig`` has it all)."""

    maml_inner_lr: float
    maml_test_steps: int
    head_steps: int
    head_lr: float


def proto_loss(net: torch.nn.Module, episode, n_way: int) -> torch.Tensor:
    """Prototypical Networks' training loss on one episode ``(xs, ys, xq, yq)`` (Snell et al.
    2017, eqs. 1-2): support and query embedded together, cross-entropy of the prototype logits."""
    xs, ys, xq, yq = episode
    z = net(torch.cat([xs, xq]))
    return F.cross_entropy(proto_logits(z[len(xs) :], prototypes(z[: len(xs)], ys, n_way)), yq)


def predict(
    learner: str, net: torch.nn.Module, xs, ys, xq, n_way: int, cfg: FewShotSettings
) -> torch.Tensor:
    """The predicted classes of the queries ``xq`` after seeing the support set ``(xs, ys)``.

    - ``ProtoNet``: nearest prototype in the learned embedding (support and query embedded
      together);
    - ``first-order MAML``: ``cfg.maml_test_steps`` gradient steps from the meta-learned weights;
    - ``transfer``: the pretrained body's features, a new linear head fitted on the support set.

    ``cfg``: chapter 7's :class:`~tlcourse.chapters.ch07_meta.OmniglotConfig`, or any object with
    its step sizes and step counts.
    """
    if learner == "ProtoNet":
        with torch.no_grad():
            z = net(torch.cat([xs, xq]))
        return proto_logits(z[len(xs) :], prototypes(z[: len(xs)], ys, n_way)).argmax(1)
    if learner == "first-order MAML":
        if n_way != net[-1].out_features:
            raise ValueError(
                f"predict: this MAML model classifies {net[-1].out_features} ways, not {n_way}; "
                "meta-train it with episodes of that many ways."
            )
        params = {k: v.detach() for k, v in params_of(net).items()}
        fast = adapt(
            net,
            params,
            xs,
            ys,
            cfg.maml_inner_lr,
            cfg.maml_test_steps,
            F.cross_entropy,
            first_order=True,
        )
        with torch.no_grad():
            return functional_call(net, fast, (xq,)).argmax(1)
    if learner == "transfer":
        with torch.no_grad():
            z = net[:-1](torch.cat([xs, xq]))
        head = torch.nn.Linear(z.shape[1], n_way, device=z.device)
        torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        opt = torch.optim.Adam(head.parameters(), lr=cfg.head_lr)
        with torch.enable_grad():
            for _ in range(cfg.head_steps):
                opt.zero_grad()
                F.cross_entropy(head(z[: len(xs)]), ys).backward()
                opt.step()
        return head(z[len(xs) :]).argmax(1)
    raise ValueError(
        f"predict: unknown learner {learner!r}; use 'ProtoNet', 'first-order MAML' or 'transfer'."
    )


def transfer_accuracies(
    net: torch.nn.Module, drawn: list, n_way: int, cfg: FewShotSettings
) -> list[float]:
    """:func:`predict`'s ``transfer`` rule on many episodes at once: each episode is embedded on its
    own (its batch-norm statistics stay its own), then all the new heads are fitted together. Adam's
    update is elementwise, so one Adam over the stacked heads, on the sum of the episodes' losses,
    takes exactly the steps that one Adam per episode would take."""
    n_support = len(drawn[0][0])
    with torch.no_grad():
        z = [net[:-1](torch.cat([xs, xq])) for xs, _, xq, _ in drawn]
    zs, zq = torch.stack([e[:n_support] for e in z]), torch.stack([e[n_support:] for e in z])
    ys, yq = torch.stack([e[1] for e in drawn]), torch.stack([e[3] for e in drawn])
    w = torch.zeros(len(drawn), n_way, zs.shape[-1], device=zs.device, requires_grad=True)
    b = torch.zeros(len(drawn), n_way, device=zs.device, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=cfg.head_lr)
    with torch.enable_grad():
        for _ in range(cfg.head_steps):
            opt.zero_grad()
            logits = torch.einsum("end,ekd->enk", zs, w) + b[:, None]
            loss = F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none")
            loss.view(len(drawn), -1).mean(1).sum().backward()
            opt.step()
    predicted = (torch.einsum("eqd,ekd->eqk", zq, w) + b[:, None]).argmax(-1)
    return (predicted == yq).float().mean(1).tolist()


def ag_news_pool(
    per_class: int, seed: int = 0, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A fixed pool of ``per_class`` AG News test sentences per class, embedded once with
    all-MiniLM-L6-v2 (mean pooling, L2-normalised, as the model was trained; cached):
    ``(features (n, 384), labels (n,), texts)``."""
    test = load_ag_news()["test"]
    labels = torch.as_tensor(test["label"])
    g = torch.Generator().manual_seed(seed)
    picked = torch.cat(
        [
            torch.nonzero(labels == c).flatten()[
                torch.randperm(int((labels == c).sum()), generator=g)[:per_class]
            ]
            for c in range(4)
        ]
    ).tolist()
    texts = list(test.select(picked)["text"])
    key = {"per_class": per_class, "seed": seed, "model": "minilm", "pooling": "mean"}
    state, _ = hub.cached_tensors(
        "ch07-ag-news-minilm",
        key,
        lambda: ({"features": sentence_features(texts, "minilm", progress=progress)}, {}),
        verbose=False,
    )
    return state["features"], labels[picked], texts
