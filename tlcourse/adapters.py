"""Chapter 6: the other parameter-efficient methods — bottleneck adapters, BitFit, prompt tuning.

* **Adapters** (Houlsby et al. 2019, ICML, figure 2): after the attention output projection and
  after the feed-forward output projection of every layer, a bottleneck ``h + W_up f(W_down h)``
  with a small middle dimension; ``W_up`` starts at zero, so each adapter starts as the identity.
  The adapters, the layer norms and the head train; everything else is frozen.
* **BitFit** (Ben Zaken et al. 2022, ACL): train only the bias terms (and the head).
* **Prompt tuning** (Lester et al. 2021, EMNLP): ``n`` trainable vectors prepended to the input
  embeddings ("soft prompt"); the model is frozen (the head trains, as in peft's sequence
  classification).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .lora import freeze_except


class Adapter(nn.Module):
    """``h + up(gelu(down(h)))`` with ``up`` initialised to zero: the identity at the start."""

    def __init__(self, dim: int, bottleneck: int = 16) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(nn.functional.gelu(self.down(h)))


class WithAdapter(nn.Module):
    """A sub-layer's output projection followed by an adapter (before the residual and layer
    norm)."""

    def __init__(self, projection: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.projection = projection
        self.adapter = Adapter(projection.out_features, bottleneck)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.projection(x))


def insert_adapters(
    model: nn.Module, bottleneck: int = 16, train: Sequence[str] = ("classifier", "LayerNorm")
) -> int:
    """Houlsby adapters after both output projections of every BERT layer
    (``attention.output.dense`` and ``output.dense``); freezes all but adapters, layer norms and the
    head. Returns how many were added."""
    targets = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear)
        and (
            n.endswith("attention.output.dense") or (n.endswith("output.dense") and ".layer." in n)
        )
    ]
    if not targets:
        raise ValueError(
            "insert_adapters: found no BERT layer output "
            "projections (…attention.output.dense, …output.dense)."
        )
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, WithAdapter(getattr(parent, child), bottleneck))
    freeze_except(model, [".adapter.", *train])
    return len(targets)


def bitfit(model: nn.Module, train: Sequence[str] = ("classifier",)) -> None:
    """Train only the bias terms (and the head)."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias") or any(t in name for t in train))


# BERT's WordPiece vocabulary lists whole words by frequency from id 1996 ("the", "of", "and", …)
FREQUENT_WORDS = range(1996, 1996 + 5000)


class PromptTuning(nn.Module):
    """A frozen model with ``n`` trainable soft-prompt vectors prepended to its input embeddings.

    Lester et al. (2021, section 3) initialise the prompt from the embeddings of vocabulary tokens
    sampled from the 5,000 most frequent ones, or of the class labels, rather than at random; by
    default we sample ``n`` of BERT's 5,000 most frequent whole words (``init_ids`` overrides). The
    attention mask gains ``n`` ones at the front and the segment ids ``n`` zeros, as peft does for
    sequence classification. ``model`` is a transformers model for sequence classification, or a
    :class:`tlcourse.finetune.MeanPoolClassifier`, whose mean then runs over the input's own tokens
    (the prompt acts through attention); its parts are then held as ``encoder`` and ``classifier``,
    so that the head's parameters keep their names (``classifier.*``).
    """

    def __init__(
        self,
        model: nn.Module,
        n: int = 20,
        init_ids: torch.Tensor | None = None,
        train: Sequence[str] = ("classifier",),
        seed: int = 0,
    ) -> None:
        super().__init__()
        freeze_except(model, list(train))
        self.pooled = hasattr(model, "encoder") and not hasattr(model, "get_input_embeddings")
        if self.pooled:
            self.classifier, self.dropout, self.encoder = (
                model.classifier,
                model.dropout,
                model.encoder,
            )
        else:
            self.model = model
        self.embeddings = (model.encoder if self.pooled else model).get_input_embeddings()
        if init_ids is None:
            pick = torch.randperm(
                len(FREQUENT_WORDS), generator=torch.Generator().manual_seed(seed)
            )
            init_ids = torch.tensor(FREQUENT_WORDS)[pick[:n]]
        if len(init_ids) != n:
            raise ValueError(f"PromptTuning: {len(init_ids)} init ids for a prompt of {n} vectors.")
        self.prompt = nn.Parameter(self.embeddings.weight[init_ids].detach().clone())

    @property
    def config(self):
        return self.encoder.config if self.pooled else self.model.config

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ):
        batch, n = input_ids.shape[0], self.prompt.shape[0]
        embeds = torch.cat([self.prompt.expand(batch, -1, -1), self.embeddings(input_ids)], 1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = torch.cat([attention_mask.new_ones(batch, n), attention_mask], 1)
        if token_type_ids is not None:
            token_type_ids = torch.cat([token_type_ids.new_zeros(batch, n), token_type_ids], 1)
        if not self.pooled:
            return self.model(
                inputs_embeds=embeds, attention_mask=mask, token_type_ids=token_type_ids, **kwargs
            )
        from transformers.modeling_outputs import SequenceClassifierOutput

        from .features import mean_pool

        hidden = self.encoder(
            inputs_embeds=embeds, attention_mask=mask, token_type_ids=token_type_ids
        ).last_hidden_state
        pooled = mean_pool(hidden[:, n:], attention_mask)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


def training_memory(
    trainable: int, total: int, weight_bytes: int = 4, optimizer_states: int = 2
) -> dict[str, int]:
    """Bytes for weights, gradients and Adam's two moment estimates (activations not included):
    the frozen weights need no gradient and no optimiser state (section 4.2 of Hu et al. 2022)."""
    return {
        "weights": total * weight_bytes,
        "gradients": trainable * weight_bytes,
        "optimizer": optimizer_states * trainable * 4,
        "total": total * weight_bytes + trainable * weight_bytes + optimizer_states * trainable * 4,
    }
