"""In-context learning of linear functions, from scratch (Garg, Tsipras, Liang & Valiant 2022,
"What can transformers learn in-context? A case study of simple function classes", NeurIPS).

A transformer is trained on prompts ``x_1, f(x_1), ..., x_k, f(x_k), x_query``, each with its own
random linear ``f(x) = w . x``, and must predict ``f(x_query)``: no weight is updated at test time,
so whatever it learns about ``w`` it learns from the prompt.

* :func:`sample_tasks`: the paper's linear-regression class; :func:`build_prompt`,
  :func:`prompt_mask`: a prompt as example and query tokens, and who may attend to whom;
* :class:`ICLConfig`, :class:`TinyGPT`, :func:`icl_loss`, :func:`train_icl`: a small GPT-style
  model trained on every prefix of fresh prompts at once (section 2);
* :func:`least_squares`, :func:`ridge`, :func:`nearest_neighbours`, :func:`averaging`: the
  paper's baselines, and :func:`model_predictions`, :func:`errors_by_k` to compare them with the
  model at each number of in-context examples (section 3, figure 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .train import History, fit, seeded

# predict(xs, ys) -> (batch, k + 1): prediction for y_i from the first i points of each prompt
PredictFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sample_tasks(
    batch: int,
    k: int,
    dim: int,
    generator: torch.Generator,
    *,
    x_scale: float = 1.0,
    noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` prompts of ``k + 1`` points from the paper's linear-regression class (section 2):
    ``x ~ N(0, x_scale^2 I)``, one ``w ~ N(0, I)`` per prompt, ``y = w . x + noise * N(0, 1)``.

    Returns ``xs`` ``(batch, k + 1, dim)`` and ``ys`` ``(batch, k + 1)``; the last point is the
    query. ``x_scale`` and ``noise`` are the out-of-distribution knobs (section 4): the same
    generator state gives the same ``x`` directions, ``w`` and noise draws whatever their values,
    so settings can be compared prompt by prompt.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            "sample_tasks: pass a torch.Generator, e.g. torch.Generator().manual_seed(0)."
        )
    if batch < 1 or k < 0 or dim < 1:
        raise ValueError(
            f"sample_tasks: need batch >= 1, k >= 0, dim >= 1; got {batch}, {k}, {dim}."
        )
    if x_scale <= 0 or noise < 0:
        raise ValueError(f"sample_tasks: need x_scale > 0, noise >= 0; got {x_scale}, {noise}.")
    xs = torch.randn(batch, k + 1, dim, generator=generator) * x_scale
    w = torch.randn(batch, dim, generator=generator)
    eps = torch.randn(batch, k + 1, generator=generator)  # drawn even when noise=0 (see above)
    return xs, (xs @ w.unsqueeze(-1)).squeeze(-1) + noise * eps


def _check_points(name: str, xs: torch.Tensor, ys: torch.Tensor) -> None:
    if xs.dim() != 3 or ys.dim() != 2 or xs.shape[:2] != ys.shape:
        raise ValueError(
            f"{name}: expected xs (batch, n, dim) and ys (batch, n), got {tuple(xs.shape)} and "
            f"{tuple(ys.shape)}; sample_tasks returns them in this form."
        )


def build_prompt(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The prompt of ``n`` points as ``2n - 1`` tokens of width ``dim + 2``: first the ``n - 1``
    examples, one token ``(x_j, y_j, 0)`` each, then ``n`` queries ``(x_i, 0, 1)``, one per point.

    The last coordinate marks a query. Query ``i`` is where the prediction of ``y_i`` is read; the
    attention mask of :func:`prompt_mask` lets it see only the examples before it, so one prompt
    trains every prompt length at once, as in the paper's objective. Garg et al. interleave ``x``
    and ``y`` tokens (``x_1, y_1, x_2, ...``); one token per example (as in von Oswald et al. 2023)
    spares the model learning which ``y`` belongs to which ``x``, and trains in CPU minutes. The
    query's ``y`` (``ys[:, -1]``) is in no token.
    """
    _check_points("build_prompt", xs, ys)
    batch, n, dim = xs.shape
    examples = torch.cat([xs[:, :-1], ys[:, :-1, None], xs.new_zeros(batch, n - 1, 1)], dim=-1)
    queries = torch.cat([xs, xs.new_zeros(batch, n, 1), xs.new_ones(batch, n, 1)], dim=-1)
    return torch.cat([examples, queries], dim=1)


def prompt_mask(n: int) -> torch.Tensor:
    """Which token may attend to which, for a prompt of ``n`` points: ``(2n - 1, 2n - 1)``, True
    where attention is allowed. Example ``j`` sees examples ``1..j`` (causal); query ``i`` sees
    examples ``1..i-1`` and itself, never another query and never ``y_i`` or a later ``y``."""
    if n < 1:
        raise ValueError(f"prompt_mask: a prompt has at least 1 point, got {n}.")
    m = n - 1
    mask = torch.zeros(2 * n - 1, 2 * n - 1, dtype=torch.bool)
    mask[:m, :m] = torch.tril(torch.ones(m, m, dtype=torch.bool))
    mask[m:, :m] = torch.tril(torch.ones(n, m, dtype=torch.bool), diagonal=-1)
    mask[m:, m:] = torch.eye(n, dtype=torch.bool)
    return mask


@dataclass(frozen=True)
class ICLConfig:
    """Task and model sizes, and the training budget. ``k`` is the number of in-context examples
    in a training prompt (``k + 1`` points: every prefix is trained at once)."""

    dim: int = 4
    k: int = 12
    width: int = 64
    layers: int = 2
    heads: int = 4
    steps: int = 600
    batch: int = 64
    lr: float = 3e-3

    def __post_init__(self) -> None:
        sizes = dict(dim=self.dim, width=self.width, layers=self.layers, heads=self.heads,
                     steps=self.steps, batch=self.batch)  # fmt: skip
        if any(v < 1 for v in sizes.values()) or self.k < 0 or self.lr <= 0:
            raise ValueError(f"ICLConfig: sizes must be >= 1, k >= 0, lr > 0; got {self}.")
        if self.width % self.heads:
            raise ValueError(
                f"ICLConfig: width {self.width} must be a multiple of heads {self.heads}."
            )


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention restricted by a boolean mask (True: may attend), here
    :func:`prompt_mask`, so each prediction depends on the examples before its point alone (the
    paper's ``M(P^i)``)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, c = h.shape
        # (b, t, 3c) -> three (b, heads, t, c / heads)
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """A pre-LayerNorm GPT-2 block: ``h + attn(ln(h))``, then ``h + mlp(ln(h))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = MaskedSelfAttention(width, heads)
        hidden = 4 * width
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), mask)
        return h + self.mlp(self.ln2(h))


class TinyGPT(nn.Module):
    """The paper's model in miniature (section 2: GPT-2 with a linear read-in and read-out):
    ``dim + 2 -> width`` read-in, ``layers`` masked blocks, a final LayerNorm and a ``width -> 1``
    read-out at every query token. No position embeddings: the mask alone says which examples each
    query may use."""

    def __init__(self, cfg: ICLConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.dim + 2, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.width)
        self.read_out = nn.Linear(cfg.width, 1)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # GPT-2's initialisation: N(0, 0.02) weights, zero biases
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, 2n - 1, dim + 2)`` tokens from :func:`build_prompt` -> ``(batch, n)``
        predictions, one per query."""
        if tokens.dim() != 3 or tokens.shape[-1] != self.cfg.dim + 2 or tokens.shape[1] % 2 == 0:
            raise ValueError(
                f"TinyGPT: expected tokens (batch, 2n - 1, {self.cfg.dim + 2}), got "
                f"{tuple(tokens.shape)}; build them with build_prompt(xs, ys)."
            )
        n = (tokens.shape[1] + 1) // 2
        mask = prompt_mask(n).to(tokens.device)
        h = self.read_in(tokens)
        for block in self.blocks:
            h = block(h, mask)
        return self.read_out(self.ln_f(h[:, n - 1 :]))[..., 0]


def _squared_errors(pred: torch.Tensor, ys: torch.Tensor, dim: int) -> torch.Tensor:
    # the paper's normalised squared error: E[y^2] = dim for x, w ~ N(0, I), so 0 scores 1
    return (pred - ys) ** 2 / dim


def icl_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The training objective (section 2): the normalised squared error averaged over all ``k + 1``
    prefixes, ``1/(k+1) sum_i l(M(P^i), f(x_{i+1}))``: one prompt trains every prompt length."""
    xs, ys = batch
    return _squared_errors(model(build_prompt(xs, ys)), ys, xs.shape[-1]).mean()


def train_icl(cfg: ICLConfig, seed: int = 0, progress: bool = True) -> tuple[TinyGPT, History]:
    """A :class:`TinyGPT` trained with AdamW on ``cfg.steps`` batches of fresh prompts (every step
    a new set of ``w``'s, so there is nothing to memorise), all drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            yield sample_tasks(cfg.batch, cfg.k, cfg.dim, g)

    with seeded(seed):  # the initialisation, without moving the caller's generator
        model = TinyGPT(cfg)
    history = fit(model, batches(), icl_loss, steps=cfg.steps, lr=cfg.lr, progress=progress,
                  desc="in-context training")  # fmt: skip
    return model, history


def _prefixes(name: str, xs: torch.Tensor, ys: torch.Tensor, solve: Callable) -> torch.Tensor:
    """Predict ``ys[:, i]`` from ``solve(xs[:, :i], ys[:, :i], xs[:, i])`` for every ``i``, and 0
    from no points (the best guess before any evidence, as ``w`` has mean 0)."""
    _check_points(name, xs, ys)
    preds = torch.zeros_like(ys)
    for i in range(1, ys.shape[1]):
        preds[:, i] = solve(xs[:, :i], ys[:, :i], xs[:, i])
    return preds


def least_squares(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Ordinary least squares at every prefix, the optimal estimator here when noiseless (section
    3); with fewer points than dimensions, the minimum-norm solution ``w = X^+ y`` (the paper's)."""

    def solve(x, y, query):
        w = torch.linalg.pinv(x) @ y.unsqueeze(-1)
        return (query.unsqueeze(1) @ w).flatten()

    return _prefixes("least_squares", xs, ys, solve)


def ridge(xs: torch.Tensor, ys: torch.Tensor, *, alpha: float = 1.0) -> torch.Tensor:
    """Ridge regression at every prefix, ``w = (X^T X + alpha I)^-1 X^T y``. With ``noise = s``,
    ``alpha = s^2`` is the Bayes-optimal posterior mean for the prior ``w ~ N(0, I)``; use
    ``functools.partial(ridge, alpha=...)`` where a ``predict(xs, ys)`` is expected."""
    if alpha <= 0:
        raise ValueError(f"ridge: alpha must be > 0 (alpha=0 is least_squares), got {alpha}.")

    def solve(x, y, query):
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        w = torch.linalg.solve(x.mT @ x + alpha * eye, x.mT @ y.unsqueeze(-1))
        return (query.unsqueeze(1) @ w).flatten()

    return _prefixes("ridge", xs, ys, solve)


def nearest_neighbours(xs: torch.Tensor, ys: torch.Tensor, *, n: int = 3) -> torch.Tensor:
    """The paper's ``n``-nearest-neighbours baseline: the mean ``y`` of the ``n`` earlier points
    closest to the query (all of them while there are fewer than ``n``)."""
    if n < 1:
        raise ValueError(f"nearest_neighbours: n must be >= 1, got {n}.")

    def solve(x, y, query):
        dist = (x - query.unsqueeze(1)).square().sum(-1)
        idx = dist.topk(min(n, x.shape[1]), dim=1, largest=False).indices
        return y.gather(1, idx).mean(1)

    return _prefixes("nearest_neighbours", xs, ys, solve)


def averaging(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The paper's averaging baseline: ``w_hat = mean_j y_j x_j`` (unbiased for ``w`` when
    ``E[x x^T] = I``, but with a variance that falls only as ``1/i``), prediction ``w_hat . x``."""

    def solve(x, y, query):
        return ((y.unsqueeze(-1) * x).mean(1) * query).sum(-1)

    return _prefixes("averaging", xs, ys, solve)


def model_predictions(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """A trained model as a ``predict(xs, ys)`` like the baselines (bind it with
    ``functools.partial(model_predictions, model)``): its prediction at every prefix, in eval mode
    and without gradients."""
    _check_points("model_predictions", xs, ys)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        preds = model(build_prompt(xs, ys).to(device)).cpu()
    model.train(was_training)
    return preds


def errors_by_k(
    predict_fn: PredictFn, xs: torch.Tensor, ys: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised squared error at ``0 .. k`` in-context examples (the paper's figure 2) and
    its standard error over the prompts: two ``(k + 1,)`` tensors."""
    _check_points("errors_by_k", xs, ys)
    if xs.shape[0] < 2:
        raise ValueError("errors_by_k: a standard error needs at least 2 prompts.")
    preds = predict_fn(xs, ys)
    if preds.shape != ys.shape:
        raise ValueError(
            f"errors_by_k: predict_fn returned {tuple(preds.shape)}, expected {tuple(ys.shape)} "
            "(one prediction per prompt and prefix)."
        )
    err = _squared_errors(preds, ys, xs.shape[-1])
    return err.mean(0), err.std(0) / math.sqrt(err.shape[0])
