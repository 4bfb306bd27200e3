"""Chapter 6: LoRA — low-rank adaptation of a frozen linear layer (Hu et al. 2022, ICLR).

A pretrained weight ``W`` (``d_out x d_in``) stays frozen; the update is a product of two small
matrices, ``W' = W + (alpha / r) B A`` with ``A`` (``r x d_in``) random and ``B`` (``d_out x r``)
zero, so training starts exactly at the pretrained function (eq. 3 and section 4.1 of the paper).
``A`` is drawn as loralib and peft draw it, Kaiming-uniform with ``a = sqrt(5)`` (PyTorch's default
for ``nn.Linear``): uniform on ``[-1/sqrt(d_in), 1/sqrt(d_in)]``, whatever ``r`` is; with the
``alpha / r`` scale, ``alpha`` and the learning rate then need little retuning when ``r`` changes.
Only ``(d_in + d_out) r`` numbers train instead of ``d_in d_out``; after training ``B A`` can be
merged into ``W``, so inference costs nothing extra.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import torch
from torch import nn


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * B A dropout(x)``, with ``base`` frozen."""

    def __init__(
        self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        if r < 1:
            raise ValueError(f"LoRALinear: the rank r must be at least 1, got {r}.")
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as loralib and peft
        # zero: W' = W at start
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=base.weight.device))
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / r) B A`` as a ``d_out x d_in`` matrix."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        # two thin matmuls, never the d_out x d_in product: (d_in + d_out) r multiply-adds per token
        return out + (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the frozen weight (inference then costs what the base layer
        costs)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again (to keep training, or to swap in another task's update)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


def _matches(name: str, patterns: Sequence[str]) -> bool:
    """A module name matches a pattern when the pattern is its last component or a regex that fully
    matches it."""
    return any(name.split(".")[-1] == p or re.fullmatch(p, name) for p in patterns)


def freeze_except(model: nn.Module, trainable: Sequence[str]) -> None:
    """Freeze every parameter whose name does not contain one of ``trainable`` (substrings)."""
    for name, p in model.named_parameters():
        p.requires_grad_(any(t in name for t in trainable))


def inject_lora(
    model: nn.Module,
    targets: Sequence[str] = ("query", "value"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    train: Sequence[str] = ("classifier",),
) -> list[str]:
    """Replace every ``nn.Linear`` whose name matches ``targets`` by a :class:`LoRALinear`, then
    freeze all parameters except the LoRA factors and those whose names contain one of ``train``
    (the new head). Returns the names of the wrapped modules."""
    names = [
        n for n, m in model.named_modules() if isinstance(m, nn.Linear) and _matches(n, targets)
    ]
    if not names:
        linear = sorted(
            {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ValueError(
            f"inject_lora: no nn.Linear matches {list(targets)}; "
            f"this model's linear layers are named {linear}."
        )
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    freeze_except(model, ["lora_A", "lora_B", *train])
    return names


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_all(model: nn.Module) -> None:
    for m in lora_layers(model).values():
        m.merge()


def unmerge_all(model: nn.Module) -> None:
    for m in lora_layers(model).values():
        m.unmerge()


def lora_state(model: nn.Module, extra: Iterable[str] = ("classifier",)) -> dict[str, torch.Tensor]:
    """What a task needs to store: the LoRA factors and the named extra parameters (the head)."""
    return {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if "lora_" in n or any(e in n for e in extra)
    }


def copy_to_peft(model: nn.Module, peft_model: nn.Module, adapter: str = "default") -> int:
    """Copy our LoRA factors into a ``peft`` LoRA model with the same targets; returns how many were
    copied.

    peft names them ``...query.lora_A.<adapter>.weight`` (``r x d_in``) and
    ``...lora_B.<adapter>.weight``, the same shapes as ours.
    """
    theirs = dict(peft_model.named_parameters())
    copied = 0
    for name, layer in lora_layers(model).items():
        for part in ("lora_A", "lora_B"):
            key = next((k for k in theirs if k.endswith(f"{name}.{part}.{adapter}.weight")), None)
            if key is None:
                raise KeyError(f"copy_to_peft: peft model has no {name}.{part}.{adapter}.weight")
            with torch.no_grad():
                theirs[key].copy_(getattr(layer, part))
            copied += 1
    return copied
