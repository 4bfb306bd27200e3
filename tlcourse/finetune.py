"""Chapter 4: fine-tuning a BERT-style encoder with a classification head on ``[CLS]``.

Devlin et al. (2019), section 3.2 and figure 4: single sentences are encoded as
``[CLS] A [SEP]``, sentence pairs as ``[CLS] A [SEP] B [SEP]`` with segment ids 0/1; a linear layer
on the final ``[CLS]`` state (through BERT's pooler) predicts the label, and the whole network is
trained with a small learning rate and linear warm-up/decay.

A sentence encoder trained on the mean of its token states (all-MiniLM-L6-v2; Reimers & Gurevych
2019) is read out by that mean instead of ``[CLS]``: :class:`MeanPoolClassifier`,
:func:`minilm_classifier`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch
import torch.nn.functional as F

from . import hub
from .features import mean_pool
from .train import adamw

if TYPE_CHECKING:
    from transformers.modeling_outputs import SequenceClassifierOutput


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning budget and optimiser settings: ``steps(n)`` = epochs x n / batch, clipped to
    [min, max]."""

    epochs: float = 3.0
    min_steps: int = 50
    max_steps: int = 300
    batch: int = 32
    lr: float = 1e-4
    warmup: float = 0.1  # share of the steps
    max_len: int = 64
    group: int = 8  # length grouping (see length_grouped_batches); 1 = plain random batches
    head_lr_scale: float = 1.0  # lr x this for the parameters of a fresh head (``classifier.*``)

    def steps(self, n_examples: int) -> int:
        return int(min(self.max_steps, max(self.min_steps, self.epochs * n_examples / self.batch)))


def encode(
    tokenizer, dataset, columns: Sequence[str], max_len: int, truncation: bool | str = True
) -> dict[str, torch.Tensor]:
    """Tokenise one text column (single sentences) or two (pairs) of a ``datasets.Dataset``.

    ``truncation`` is the tokenizer's: ``"only_first"`` shortens only the first text of a pair
    (e.g. an entailment premise, never its hypothesis).
    """
    texts = [list(dataset[c]) for c in columns]
    enc = tokenizer(
        *texts,
        truncation=truncation,
        max_length=max_len,
        padding="max_length",
        return_tensors="pt",
    )
    enc["labels"] = torch.tensor(list(dataset["label"]))
    return dict(enc)


def length_grouped_batches(
    lengths: torch.Tensor, batch: int, steps: int, generator: torch.Generator, group: int = 8
) -> list[torch.Tensor]:
    """``steps`` random minibatches of row indices, each of rows of similar length.

    Rows are drawn at random ``group * batch`` at a time, sorted by length and cut into ``group``
    batches, which are then shuffled (the idea of transformers' ``group_by_length``). Each batch is
    trimmed to its longest row, so less compute goes to padding: on SST-2, whose sentences range
    from one word to fifty, about 3x less. ``group = 1`` gives plain random batches.
    """
    out: list[torch.Tensor] = []
    while len(out) < steps:
        pool = torch.randint(len(lengths), (group * batch,), generator=generator)
        pool = pool[torch.argsort(lengths[pool], descending=True, stable=True)]
        chunks = list(pool.split(batch))
        out.extend(chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist())
    return out[:steps]


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LossFn = Callable[[torch.Tensor, dict], torch.Tensor]


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the token positions that are padding in every row of the batch (most sentences are
    short)."""
    length = int(batch["attention_mask"].sum(1).max())
    return {k: (v[:, :length] if k in MODEL_INPUTS else v) for k, v in batch.items()}


def _label_loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    return F.cross_entropy(logits, batch["labels"])


@torch.no_grad()
def evaluate(model, data: dict[str, torch.Tensor], batch: int = 128) -> float:
    """Accuracy of a sequence classifier on encoded ``data``."""
    model.eval()
    correct = 0
    order = torch.argsort(
        data["attention_mask"].sum(1), stable=True
    )  # similar lengths together: less padding
    for s in range(0, len(order), batch):
        part = trim_padding({k: v[order[s : s + batch]] for k, v in data.items()})
        logits = model(**{k: v for k, v in part.items() if k in MODEL_INPUTS}).logits
        correct += (logits.argmax(-1) == part["labels"]).sum().item()
    return correct / len(data["labels"])


def finetune_classifier(
    model,
    train: dict[str, torch.Tensor],
    test: dict[str, torch.Tensor],
    cfg: FinetuneConfig,
    seed: int = 0,
    device="cpu",
    loss_fn: LossFn = _label_loss,
    param_groups: list[dict] | None = None,
    after_backward: Callable[[], None] | None = None,
) -> tuple[float, list[float]]:
    """Fine-tune every parameter of ``model`` (a ``...ForSequenceClassification``) on encoded
    ``train``.

    AdamW with linear warm-up and decay; minibatches of similar-length rows
    (:func:`length_grouped_batches`) drawn with a generator seeded by ``seed``. The parameters of a
    freshly initialised head, named ``classifier.*`` as in transformers, train at
    ``cfg.lr * cfg.head_lr_scale``. ``loss_fn(logits,
    batch)`` sees every column of the batch (the labels, or e.g. a teacher's logits in chapter 8);
    the model sees only its inputs. ``param_groups`` replaces the two groups (body, head) with the
    caller's, e.g. chapter 9's per-layer rates; ``after_backward()`` runs after each backward pass,
    before clipping (e.g. adding L2-SP's gradient). Parameters with ``requires_grad`` False are not
    updated. Returns the test accuracy and the training losses.
    """
    model.to(device).train()
    steps = cfg.steps(len(train["input_ids"]))
    warm = max(1, int(cfg.warmup * steps))
    named = list(model.named_parameters())
    head = [p for n, p in named if n.startswith("classifier.")]
    body = [p for n, p in named if not n.startswith("classifier.")]
    groups = param_groups or [
        {"params": ps, "lr": lr}
        for ps, lr in ((body, cfg.lr), (head, cfg.lr * cfg.head_lr_scale))
        if ps
    ]
    opt = adamw(groups, lr=cfg.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm + 1)))
    )
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for idx in length_grouped_batches(
        train["attention_mask"].sum(1), cfg.batch, steps, gen, cfg.group
    ):
        batch = {
            k: v.to(device) for k, v in trim_padding({k: v[idx] for k, v in train.items()}).items()
        }
        loss = loss_fn(model(**{k: v for k, v in batch.items() if k in MODEL_INPUTS}).logits, batch)
        opt.zero_grad()
        loss.backward()
        if after_backward is not None:
            after_backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        schedule.step()
        losses.append(loss.item())
    model.cpu()
    return evaluate(model, test), losses


class MeanPoolClassifier(torch.nn.Module):
    """An encoder read out the way a sentence encoder is trained: the mean of its last layer over
    the real tokens (:func:`tlcourse.features.mean_pool`), dropout, and a new linear layer
    ``classifier``.

    all-MiniLM-L6-v2 was trained with mean pooling (Reimers & Gurevych 2019's MEAN strategy); its
    ``[CLS]`` state and BERT's pooler were never part of that training.
    """

    def __init__(self, encoder: torch.nn.Module, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None) -> SequenceClassifierOutput:
        # imported here, as in the other method modules: importing this module stays light
        from transformers.modeling_outputs import SequenceClassifierOutput

        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)))


def minilm_classifier(num_labels: int = 2) -> MeanPoolClassifier:
    """all-MiniLM-L6-v2 with a new mean-pooling classification head."""
    return MeanPoolClassifier(hub.load_model("minilm"), num_labels)
