"""Chapter 9: fine-tuning strategies — what to tune, how fast, and what is forgotten.

Every piece works on a BERT-style encoder (a transformers ``BertModel`` or
``...ForSequenceClassification``, or :class:`tlcourse.finetune.MeanPoolClassifier`) cut into
ordered blocks, bottom to top: ``embeddings``, ``layer 0`` ... ``layer L-1``, ``head``
(:func:`blocks`). On those blocks:

* how fast: ULMFiT's discriminative learning rates and slanted triangular schedule (Howard & Ruder
  2018, section 3.2, eqs. 2 and 3): :func:`discriminative_groups`, :func:`slanted_triangular`;
* what to tune: gradual unfreezing (ULMFiT, section 3.2), surgical fine-tuning of chosen blocks (Lee
  et al. 2023), re-initialising the top layers (Zhang et al. 2021, section 5):
  :class:`GradualUnfreezing`, :func:`tune_only`, :func:`reinit_top_layers`;
* what is forgotten: L2-SP, a pull back to the pretrained weights (Li et al. 2018), and LP-FT, a
  linear probe before fine-tuning so the new head does not distort the features (Kumar et al. 2022):
  :class:`L2SP`, :func:`head_features`, :func:`linear_probe_head`.

None of them owns a training loop: they return optimizer parameter groups, a ``LambdaLR``, a penalty
callable, or change ``requires_grad``, so any loop such as
:func:`tlcourse.finetune.finetune_classifier` can use them.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .finetune import MODEL_INPUTS, trim_padding
from .train import seeded

Block = tuple[str, list[tuple[str, nn.Parameter]]]
_EMBEDDINGS = re.compile(r"(^|\.)embeddings\.")
_LAYER = re.compile(r"(^|\.)encoder\.layer\.(\d+)\.")


def blocks(model: nn.Module) -> list[Block]:
    """The model's parameters as ordered blocks ``[(name, [(param_name, param), ...]), ...]``.

    Bottom to top: ``"embeddings"``, ``"layer 0"`` ... ``"layer L-1"``, then ``"head"``: everything
    else (BERT's pooler, the classifier); the head is left out when the model has none. Blocks are
    found by parameter name (``...embeddings.`` and ``...encoder.layer.{i}.``), so a bare
    ``BertModel``, ``BertForSequenceClassification`` (``bert.`` prefix) and ``MeanPoolClassifier``
    (``encoder.``) all work. Each parameter is in exactly one block (shared tensors listed once).
    """
    named = list(model.named_parameters())
    emb, layers, head = [], {}, []
    for name, p in named:
        if m := _LAYER.search(name):  # checked first: a layer's name never contains "embeddings."
            layers.setdefault(int(m.group(2)), []).append((name, p))
        elif _EMBEDDINGS.search(name):
            emb.append((name, p))
        else:
            head.append((name, p))
    if not emb or not layers or sorted(layers) != list(range(len(layers))):
        raise ValueError(
            f"blocks: expected '...embeddings.*' and '...encoder.layer.0..L-1.*' parameters; got "
            f"{len(emb)} embedding tensors and layers {sorted(layers)} in {type(model).__name__}."
        )
    out = [("embeddings", emb), *((f"layer {i}", layers[i]) for i in range(len(layers)))]
    out += [("head", head)] if head else []
    assert sum(len(ps) for _, ps in out) == len(named) == len({id(p) for _, p in named})
    return out


def block_names(model: nn.Module) -> list[str]:
    return [name for name, _ in blocks(model)]


def discriminative_groups(
    model: nn.Module, lr: float, decay: float = 2.6, head_lr: float | None = None
) -> list[dict]:
    """Optimizer parameter groups with discriminative fine-tuning (ULMFiT, section 3.2, eq. 2).

    Each layer ``l`` has its own rate, ``theta^l <- theta^l - eta^l grad_l J``, with
    ``eta^(l-1) = eta^l / decay`` (the paper's 2.6): lower layers hold more general features, so
    they should move less. The top encoder layer gets ``lr``, the one below ``lr / decay``, ..., the
    embeddings (the lowest block) ``lr / decay^L``; the head gets ``head_lr`` (default ``lr``).
    ``decay = 1`` gives one rate everywhere. Each group carries its block's ``"name"``; every
    parameter is included, frozen or not, so :class:`GradualUnfreezing` can unfreeze it later.
    """
    parts = blocks(model)
    n_layers = sum(name.startswith("layer ") for name, _ in parts)
    groups = []
    for depth, (name, params) in enumerate(parts):  # depth: embeddings 0, layer i is i + 1
        if name == "head":  # a new head has nothing to keep: it may learn at its own rate
            rate = lr if head_lr is None else head_lr
        else:
            rate = lr / decay ** (n_layers - depth)
        groups.append({"name": name, "params": [p for _, p in params], "lr": rate})
    return groups


def slanted_triangular(step: int, total: int, cut_frac: float = 0.1, ratio: float = 32) -> float:
    """ULMFiT's slanted triangular learning rate (Howard & Ruder 2018, eq. 3), as a multiplier of
    ``eta_max`` at ``step`` (0-based) of ``total`` steps ``T``::

        cut = floor(T cut_frac)
        p   = t / cut                                   if t < cut
              1 - (t - cut) / (cut (1 / cut_frac - 1))  otherwise
        eta_t = eta_max (1 + p (ratio - 1)) / ratio

    A short linear rise to ``eta_max`` at ``t = cut``, then a long linear decay that reaches
    ``eta_max / ratio`` at ``t = T`` (when ``T cut_frac`` is a whole number), one step after the
    last step ``T - 1``. ``cut`` is at least 1 (for ``T cut_frac < 1``, where eq. 3 divides by
    zero) and ``p`` is clipped to ``[0, 1]`` past ``T``.

    PyTorch's ``OneCycleLR(max_lr, total_steps=T, pct_start=cut_frac, anneal_strategy="linear",
    div_factor=ratio, final_div_factor=1, three_phase=False)`` draws the same triangle one step
    early: its peak is at ``t = T cut_frac - 1`` and its decay ends at ``eta_max / ratio`` on the
    last step ``T - 1``. Its decay is eq. 3 shifted by one step (``onecycle(t) = stlr(t + 1)`` for
    ``t >= cut - 1``); its rise is steeper (``cut - 1`` steps instead of ``cut``). The largest gap
    is at ``t = cut - 1``: ``(1 - 1/ratio) / cut`` of ``eta_max`` (0.096875 for ``cut = 10``,
    ``ratio = 32``), a real difference, not rounding; tests/test_strategies.py checks all of this
    exactly.
    """
    if not 0 < cut_frac < 1:
        raise ValueError(f"slanted_triangular: cut_frac must be in (0, 1), got {cut_frac}.")
    cut = max(1, math.floor(total * cut_frac))
    if step < cut:
        p = step / cut
    else:
        p = 1 - (step - cut) / (cut * (1 / cut_frac - 1))
    p = min(1.0, max(0.0, p))
    return (1 + p * (ratio - 1)) / ratio


def slanted_triangular_scheduler(
    optimizer: torch.optim.Optimizer, total: int, cut_frac: float = 0.1, ratio: float = 32
) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`slanted_triangular` as a ``LambdaLR``: each group's own ``lr`` is its ``eta_max``, so
    it composes with :func:`discriminative_groups`. Call ``.step()`` after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: slanted_triangular(t, total, cut_frac, ratio)
    )


def _set_trainable(parts: list[Block], trainable: set[str]) -> None:
    for name, params in parts:
        for _, p in params:
            p.requires_grad_(name in trainable)
            if name not in trainable:
                # a stale gradient (even a zero one) would let AdamW apply momentum and weight decay
                # to a frozen tensor: AdamW skips a parameter only when its .grad is None
                p.grad = None


class GradualUnfreezing:
    """Gradual unfreezing (ULMFiT, section 3.2): at stage ``k`` only the top ``k + 1`` blocks train.

    Stage 0 trains the head alone, stage 1 the head and the top layer, ..., the last stage
    everything; ULMFiT moves one stage per epoch, so the new head settles before it can send large
    gradients into the pretrained layers. Build the optimizer over all parameters once: frozen
    tensors have ``grad = None``, and AdamW then neither updates them nor creates state for them
    (use ``optimizer.zero_grad(set_to_none=True)``, PyTorch's default). Freezing a block again
    drops its gradients for the same reason.
    """

    def __init__(self, model: nn.Module) -> None:
        self.blocks = blocks(model)
        self.names = [name for name, _ in self.blocks]
        self.trainable: list[str] = []
        self.stage(0)

    @property
    def n_stages(self) -> int:
        return len(self.blocks)

    def stage(self, k: int) -> list[str]:
        """Make only the top ``k + 1`` blocks trainable (all of them when ``k`` is larger); returns
        their names, bottom to top."""
        if k < 0:
            raise ValueError(f"GradualUnfreezing.stage: k must be >= 0, got {k}.")
        self.trainable = self.names[max(0, len(self.names) - (k + 1)) :]
        _set_trainable(self.blocks, set(self.trainable))
        return list(self.trainable)


def tune_only(model: nn.Module, names: Iterable[str]) -> int:
    """Surgical fine-tuning (Lee et al., ICLR 2023): train only the named blocks, freeze the rest.

    Lee et al. find that the best block to tune depends on the shift: the first blocks for
    input-level shifts (image corruptions), middle ones for feature-level shifts, the last layer for
    output-level ones (label shifts). ``names`` are :func:`blocks` names (e.g. ``["layer 0",
    "head"]``). Returns the number of trainable numbers.
    """
    parts = blocks(model)
    valid = [name for name, _ in parts]
    wanted = set(names)
    if unknown := sorted(wanted - set(valid)):
        raise ValueError(f"tune_only: unknown blocks {unknown}; this model's blocks are {valid}.")
    _set_trainable(parts, wanted)
    return sum(p.numel() for name, ps in parts if name in wanted for _, p in ps)


def _init_owner(model: nn.Module) -> nn.Module:
    """The transformers ``PreTrainedModel`` inside ``model`` (itself, or e.g.
    ``MeanPoolClassifier.encoder``): the one whose ``_init_weights`` and ``config`` we use."""
    for module in model.modules():
        if callable(getattr(module, "_init_weights", None)) and hasattr(module, "config"):
            return module
    raise ValueError(f"reinit_top_layers: {type(model).__name__} holds no transformers model.")


@contextmanager
def _unguarded(modules: list[nn.Module]) -> Iterator[None]:
    """Lift transformers 5's ``_is_hf_initialized`` guard from these modules' parameters.

    ``from_pretrained`` marks every loaded tensor with it, and since transformers 5 the init
    functions ``_init_weights`` calls (``transformers.initialization.normal_``, ``ones_``, ...)
    leave a marked tensor alone: on a loaded model, ``_init_weights`` silently does nothing. The
    marks are put back afterwards, so the model's bookkeeping is as it was.
    """
    marked = [p for m in modules for p in m.parameters() if getattr(p, "_is_hf_initialized", False)]
    for p in marked:
        del p._is_hf_initialized
    try:
        yield
    finally:
        for p in marked:
            p._is_hf_initialized = True


def reinit_top_layers(model: nn.Module, k: int, seed: int = 0) -> list[str]:
    """Re-initialise the top ``k`` encoder layers and the pooler, if any (Zhang et al. 2021,
    "Revisiting few-sample BERT fine-tuning", section 5).

    The top layers of a pretrained BERT are specialised to the pretraining task; with few labels,
    starting them afresh transfers better. They are drawn with the model's own initialiser
    (``BertPreTrainedModel._init_weights``: linear weights ``N(0, initializer_range^2)``, biases 0,
    LayerNorm weight 1 and bias 0), in a :func:`tlcourse.train.seeded` block: the same ``seed``
    gives the same weights, and the caller's random state does not move. Returns the names of the
    re-initialised modules.
    """
    owner = _init_owner(model)
    stacks = [m for n, m in model.named_modules() if re.search(r"(^|\.)encoder\.layer$", n)]
    if len(stacks) != 1 or not 0 <= k <= len(stacks[0]):
        raise ValueError(f"reinit_top_layers: need one encoder.layer stack and 0 <= k <= L; k={k}.")
    layers = stacks[0]
    targets = {f"layer {i}": layers[i] for i in range(len(layers) - k, len(layers))}
    pooler = next((m for n, m in model.named_modules() if n.split(".")[-1] == "pooler"), None)
    if pooler is not None and k > 0:
        targets["pooler"] = pooler
    probe = [(p, p.detach().clone()) for m in targets.values() for p in m.parameters()][:1]
    with seeded(seed), torch.no_grad(), _unguarded(list(targets.values())):
        for module in targets.values():
            for sub in module.modules():
                owner._init_weights(sub)
    # guard against a silent no-op (a future init guard): a fresh draw never equals the old weights
    if probe and torch.equal(probe[0][0], probe[0][1]):
        raise RuntimeError("reinit_top_layers: the initialiser left the weights unchanged.")
    return list(targets)


class L2SP:
    """L2-SP (Li, Grandvalet & Davoine, ICML 2018): pull the body back to its pretrained weights.

    The paper's regulariser is ``Omega(w) = alpha/2 ||w_S - w_S^0||^2 + beta/2 ||w_Sbar||^2`` with
    ``w_S^0`` the pretrained weights of the shared body ``S`` and ``Sbar`` the new head. Here
    ``penalty(model) = lam * sum ||theta - theta0||^2 + beta * sum ||theta_head||^2``, so ``lam`` is
    the paper's ``alpha / 2`` and ``beta`` its ``beta / 2``. Weight decay towards zero would pull
    the body away from what it learnt; L2-SP decays towards the starting point instead (give the
    body's groups ``weight_decay=0``). Added to the loss, the penalty goes through Adam's scaling
    like any loss term (the paper used SGD). ``theta0`` is a detached copy taken at construction.
    """

    def __init__(self, model: nn.Module, lam: float = 0.01, beta: float = 0.0) -> None:
        self.lam, self.beta = lam, beta
        self.start = {
            n: p.detach().clone() for name, ps in blocks(model) if name != "head" for n, p in ps
        }

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``lam * sum ||theta - theta0||^2`` over the body, plus ``beta * sum ||theta||^2`` over
        the rest (the head) when ``beta`` is not 0; add it to the loss before ``backward()``."""
        body = head = None
        for name, p in model.named_parameters():
            if name in self.start:
                d = (p - self.start[name].to(p.device)).pow(2).sum()
                body = d if body is None else body + d
            elif self.beta:
                h = p.pow(2).sum()
                head = h if head is None else head + h
        out = self.lam * body
        return out if head is None else out + self.beta * head

    __call__ = penalty

    @torch.no_grad()
    def add_gradient(self, model: nn.Module) -> None:
        """Add the penalty's gradient, ``2 lam (theta - theta0)`` (and ``2 beta theta`` on the
        head), to ``p.grad`` in place: call it after ``loss.backward()`` instead of adding
        :meth:`penalty` to the loss. Same update, without building a graph over every weight
        (a quarter of a MiniLM step's time). Frozen parameters (``grad`` None) are skipped."""
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            if name in self.start:
                p.grad.add_(p - self.start[name].to(p.device), alpha=2 * self.lam)
            elif self.beta:
                p.grad.add_(p, alpha=2 * self.beta)


@torch.no_grad()
def head_features(
    model: nn.Module, data: dict[str, torch.Tensor], batch: int = 128
) -> torch.Tensor:
    """What ``model.classifier`` sees for each row of encoded ``data`` (eval mode, so dropout is
    off): BERT's pooled ``[CLS]`` state, or :class:`MeanPoolClassifier`'s token mean. Read by a hook
    on the classifier's input, so any model with a ``classifier`` works."""
    seen: list[torch.Tensor] = []
    hook = model.classifier.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(data["input_ids"]), batch):
            part = trim_padding({k: v[s : s + batch] for k, v in data.items() if k in MODEL_INPUTS})
            model(**part)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(seen)


def linear_probe_head(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    l2: float = 1e-3,
    max_iter: int = 500,
) -> float:
    """LP-FT's first step (Kumar et al., ICLR 2022): fit ``model.classifier`` on frozen features.

    Fine-tuning with a random head distorts the pretrained features early on (the head's large,
    wrong gradients reach the body), which costs accuracy out of distribution; fitting the head
    first by logistic regression on the frozen ``features`` (:func:`head_features`), then
    fine-tuning everything, avoids it. The fit minimises ``mean CE(W x + b, y) + l2/2 ||W||^2``
    (bias not penalised) by full-batch L-BFGS in float64 from zero: convex, deterministic, and the
    same objective as scikit-learn's multinomial ``LogisticRegression(C=1 / (l2 n))`` (for two
    classes, where scikit-learn fits the one vector ``w_1 - w_0``, ``C=2 / (l2 n)``). Writes
    ``W, b`` into ``model.classifier`` and returns the final training objective.
    """
    head: nn.Linear = model.classifier
    x, y = features.detach().double().cpu(), labels.cpu()
    w = torch.zeros(head.out_features, head.in_features, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(head.out_features, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def objective() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + l2 / 2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        head.weight.copy_(w)
        head.bias.copy_(b)
        return float(F.cross_entropy(x @ w.T + b, y) + l2 / 2 * w.pow(2).sum())
