"""Self-supervised pretraining (chapter 10): labels made from the data itself.

* :func:`info_nce`: the InfoNCE loss of a score matrix whose diagonal holds the positive pairs (van
  den Oord, Li & Vinyals 2018, "Representation learning with contrastive predictive coding", eq. 4),
  and :func:`mi_lower_bound`, the bound ``I(x; c) >= log k - L`` it gives;
* :func:`nt_xent`: SimCLR's version (Chen et al. 2020, eq. 1): two views of ``n`` images, each
  view's positive is the other view of its image, the other ``2n - 2`` views are its negatives;
* :func:`rotations`: the rotation pretext task (Gidaris, Singh & Komodakis 2018): every image four
  times, labelled by how far it was turned;
* :data:`AUGMENTATIONS`, :func:`augment`, :func:`two_views`: random views of 28x28 character images;
* :class:`ProjectionHead`, :func:`pretrain`: one training loop for any of these pretext losses (and
  for :func:`supervised_loss`, the labelled baseline they are compared with).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .train import adamw, progress_bar, seeded


def info_nce(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018, eq. 4) of a ``(k, k)`` score matrix: row ``i`` scores one
    context against ``k`` candidates, the positive at column ``i`` and ``k - 1`` negatives, so

    ``L = -mean_i log( exp(s_ii) / sum_j exp(s_ij) )``:

    the cross-entropy of picking the positive out of the ``k`` candidates, written out here as
    ``logsumexp`` minus the positive's score (``F.cross_entropy(scores, arange(k))`` is the same).
    """
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(
            f"info_nce: scores must be a square (k, k) matrix, got {tuple(scores.shape)}."
        )
    return (torch.logsumexp(scores, dim=1) - scores.diagonal()).mean()


def mi_lower_bound(loss: float, k: int) -> float:
    """The mutual-information bound of InfoNCE with ``k`` candidates (van den Oord et al. 2018,
    section 2.3): ``I(x; c) >= log k - L``, in nats. It can never exceed ``log k``: a batch of ``k``
    certifies at most ``log k`` nats, whatever the encoder."""
    return math.log(k) - float(loss)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's NT-Xent loss (Chen et al. 2020, eq. 1): normalised temperature-scaled cross-entropy.

    ``z1[i]`` and ``z2[i]`` are two views of image ``i``. All ``2n`` projections are L2-normalised,
    ``s_ij = z_i . z_j / tau`` (cosine similarity over the temperature), and each view must pick
    its partner out of the ``2n - 1`` other views:
    ``l(i, j) = -log exp(s_ij) / sum_{k != i} exp(s_ik)``, averaged over all ``2n`` views. A view
    is never its own candidate (its score is masked out).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"nt_xent: z1 and z2 must both be (n, d); got {tuple(z1.shape)}, {tuple(z2.shape)}."
        )
    if temperature <= 0:
        raise ValueError(f"nt_xent: the temperature must be positive, got {temperature}.")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    positive = sim[torch.arange(2 * n, device=z.device), partner]
    return (torch.logsumexp(sim, dim=1) - positive).mean()


def rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation pretext task (Gidaris et al. 2018): each ``(n, c, h, w)`` image turned by 0, 90,
    180 and 270 degrees counter-clockwise, labelled 0 to 3. To say how far a character was turned,
    a network has to know what upright characters look like."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(
            f"rotations: expected square (n, c, h, w) images, got {tuple(images.shape)}."
        )
    turned = torch.cat([torch.rot90(images, r, dims=(-2, -1)) for r in range(4)])
    labels = torch.arange(4).repeat_interleave(images.shape[0])
    return turned, labels


def _affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def _crop(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random resized crop: zoom in by 1 to 1.5 on a random part of the image."""
    n = x.shape[0]
    scale = 1 / (1 + 0.5 * torch.rand(n, generator=g))  # the crop's side, as a share of the image
    shift = (1 - scale) * (2 * torch.rand(2, n, generator=g) - 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = shift[0], shift[1]
    return _affine(x, theta)


def _rotate(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A small rotation, up to 20 degrees either way (the pretext task's turns are 90 degrees)."""
    angle = (2 * torch.rand(x.shape[0], generator=g) - 1) * math.radians(20)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    return _affine(x, theta)


def _stroke(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Thicker or thinner pen: grey-scale dilation or erosion (3x3), or neither, a third each."""
    pick = torch.randint(0, 3, (x.shape[0],), generator=g).view(-1, 1, 1, 1)
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return torch.where(pick == 0, thick, torch.where(pick == 1, thin, x))


def _erase(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Cutout: a random square of a quarter to a third of the side is wiped blank."""
    n, _, h, w = x.shape
    side = torch.randint(h // 4, h // 3 + 1, (n,), generator=g)
    top = (torch.rand(n, generator=g) * (h - side + 1)).long()
    left = (torch.rand(n, generator=g) * (w - side + 1)).long()
    rows, cols = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + side).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + side).view(n, 1, 1))
    )
    return x.masked_fill(inside[:, None], 0.0)


# The views SimCLR learns to match; applied in this order. For binary character images the
# paper's colour jitter has nothing to act on: pen thickness and cutout take its place.
AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "crop": _crop,
    "rotate": _rotate,
    "stroke": _stroke,
    "erase": _erase,
}


def augment(
    images: torch.Tensor, generator: torch.Generator, ops: tuple[str, ...] | None = None
) -> torch.Tensor:
    """One random view of each ``(n, 1, h, w)`` image in [0, 1]: the ``ops`` of
    :data:`AUGMENTATIONS` (default all) in order, each drawn independently per image from
    ``generator``. Shapes and the [0, 1] range are kept."""
    ops = tuple(AUGMENTATIONS) if ops is None else ops
    if unknown := sorted(set(ops) - set(AUGMENTATIONS)):
        raise ValueError(
            f"augment: unknown {unknown}; the augmentations are {list(AUGMENTATIONS)}."
        )
    x = images
    for name in AUGMENTATIONS:  # a fixed order, whatever the order of ``ops``
        if name in ops:
            x = AUGMENTATIONS[name](x, generator)
    return x.clamp(0, 1)


def two_views(
    images: torch.Tensor, generator: torch.Generator, ops: tuple[str, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of every image (SimCLR's ``t(x)`` and ``t'(x)``)."""
    return augment(images, generator, ops), augment(images, generator, ops)


class ProjectionHead(nn.Module):
    """SimCLR's projection ``g``: a one-hidden-layer MLP on the encoder's features. The loss is
    computed on ``g(h)``, and ``h`` (before it) is what transfers (Chen et al. 2020, sec. 4.2)."""

    def __init__(self, features: int, hidden: int = 128, out: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# loss(encoder, head, batch, generator): ``batch`` is a tensor of images, or ``(images, labels)``
# when :func:`pretrain` is given labels
PretextLoss = Callable[[nn.Module, nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def simclr_loss(temperature: float = 0.5, ops: tuple[str, ...] | None = None) -> PretextLoss:
    """The SimCLR pretext loss for :func:`pretrain`: two views, encoder, projection, NT-Xent."""

    def loss(encoder, head, images, g):
        v1, v2 = two_views(images, g, ops)  # drawn on the CPU, from the CPU generator
        z = head(encoder(torch.cat([v1, v2]).to(_device(encoder))))
        return nt_xent(*z.chunk(2), temperature=temperature)

    return loss


def rotation_loss(encoder, head, images, g) -> torch.Tensor:
    """The rotation pretext loss for :func:`pretrain`: a 4-way head predicts the turn."""
    turned, labels = rotations(images)
    device = _device(encoder)
    return F.cross_entropy(head(encoder(turned.to(device))), labels.to(device))


def supervised_loss(encoder, head, batch, g) -> torch.Tensor:
    """The labelled baseline for :func:`pretrain` (called with ``labels``): a linear head predicts
    each image's class, plain cross-entropy, no augmentation."""
    images, labels = batch
    device = _device(encoder)
    return F.cross_entropy(head(encoder(images.to(device))), labels.to(device))


def pretrain(
    encoder: nn.Module,
    head: nn.Module,
    loss: PretextLoss,
    images: torch.Tensor,
    steps: int,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
    labels: torch.Tensor | None = None,
) -> list[float]:
    """Train ``encoder`` and the pretext ``head`` on unlabelled CPU ``images`` by ``loss`` (e.g.
    :func:`simclr_loss` or :func:`rotation_loss`) for ``steps`` batches drawn with ``seed``; Adam
    with a cosine decay. With ``labels`` (one per image) the loss gets ``(images, labels)``
    batches, as :func:`supervised_loss` needs. The head is thrown away afterwards; the encoder is
    what transfers. Returns the loss of every step."""
    if steps < 1 or batch < 2:
        raise ValueError(f"pretrain: need steps >= 1 and batch >= 2, got {steps} and {batch}.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"pretrain: {len(images)} images but {len(labels)} labels.")
    encoder.to(device).train()
    head.to(device).train()
    params = [*encoder.parameters(), *head.parameters()]
    opt = adamw(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    losses = []
    with seeded(seed):
        for _ in progress_bar(range(steps), desc="pretraining", progress=progress):
            idx = torch.randint(0, len(images), (batch,), generator=g)
            drawn = images[idx] if labels is None else (images[idx], labels[idx])
            value = loss(encoder, head, drawn, g)  # the loss moves its batch to the device
            opt.zero_grad()
            value.backward()
            opt.step()
            schedule.step()
            losses.append(value.item())
    encoder.cpu().eval()
    head.cpu().eval()
    return losses
