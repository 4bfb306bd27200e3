"""Chapter 8: knowledge distillation — a small student learns from a large teacher's soft
predictions.

Hinton, Vinyals & Dean (2015): train the student on

    L = (1 - alpha) CE(y, softmax(z_S)) + alpha tau^2 KL(softmax(z_T / tau) || softmax(z_S / tau)),

where z_T and z_S are the teacher's and the student's logits and tau a temperature that softens both
distributions, so that the small probabilities the teacher gives to wrong classes ("dark knowledge")
carry gradient. The tau^2 factor keeps the soft term's gradients, which scale as 1 / tau^2,
comparable across temperatures. DistilBERT (Sanh et al. 2019) initialises a half-depth student from
every other layer of its teacher, and adds a cosine loss between the two models' hidden states.

* :func:`distillation_loss` is the loss above (with or without the tau^2 factor);
  :func:`hidden_cosine_loss` is DistilBERT's cosine loss;
* :func:`logits_of` runs a teacher over encoded text once, so that its predictions become the
  training targets of a student (also for text without labels);
* :func:`layer_subset_student`, :func:`narrow_student` and :class:`PieceBag` make the students;
* :func:`distil` trains a student with the fine-tuning loop of chapter 4 and the losses above;
* :func:`trim_vocabulary` drops the embedding rows of word pieces a deployment never meets;
* :func:`throughput` measures sentences per second on the CPU, for the deployment table.
"""

from __future__ import annotations

import copy
import time
from typing import Sequence

import torch
import torch.nn.functional as F

from .bow import BagOfWords
from .finetune import MODEL_INPUTS, FinetuneConfig, trim_padding, finetune_classifier
from .train import seeded

TEACHER = "teacher_logits"  # the column of an encoded dataset that holds the teacher's logits


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    alpha: float = 0.5,
    tau: float = 2.0,
    scale: bool = True,
) -> torch.Tensor:
    """Hinton et al. (2015) section 2:
    ``(1 - alpha) CE(labels, z_S) + alpha [tau^2] KL(p_T^tau || p_S^tau)``, averaged over the batch.
    Without ``labels`` (distilling on unlabelled text) ``alpha`` must be 1.

    The KL term's gradient with respect to the student's logits is ``(p_S^tau - p_T^tau) / tau`` per
    example (times ``tau^2`` when ``scale``); as ``tau`` grows it approaches ``(z_S - z_T) / C`` for
    zero-mean logits over C classes: matching logits (section 2.1).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"distillation_loss: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape (batch, classes)."
        )
    if tau <= 0 or not 0 <= alpha <= 1:
        raise ValueError(
            f"distillation_loss: need tau > 0 and 0 <= alpha <= 1, got tau={tau}, alpha={alpha}."
        )
    soft = F.kl_div(
        F.log_softmax(student_logits / tau, -1),
        F.softmax(teacher_logits / tau, -1),
        reduction="batchmean",
    )
    if scale:
        soft = soft * tau**2
    if labels is None:
        if alpha != 1:
            raise ValueError(
                "distillation_loss: without labels only the soft term exists; "
                f"pass alpha=1 (got {alpha})."
            )
        return soft
    return (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * soft


def hidden_cosine_loss(
    student_states: torch.Tensor, teacher_states: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """DistilBERT's cosine loss (Sanh et al. 2019, section 2): ``1 - cos(h_S, h_T)`` between the
    student's and the teacher's last hidden states, averaged over the real tokens of the batch
    (``mask`` = 1). It aligns the *directions* of the two models' states, which needs the same
    width."""
    if student_states.shape != teacher_states.shape:
        raise ValueError(
            f"hidden_cosine_loss: student states {tuple(student_states.shape)} and teacher states "
            f"{tuple(teacher_states.shape)} must have the same shape (batch, length, hidden)."
        )
    keep = mask.bool()
    return (1 - F.cosine_similarity(student_states[keep], teacher_states[keep], dim=-1)).mean()


@torch.no_grad()
def logits_of(
    model: torch.nn.Module, data: dict[str, torch.Tensor], batch: int = 128, device="cpu"
) -> torch.Tensor:
    """The model's logits for every row of encoded ``data``, in row order (computed in batches of
    similar length, so little goes to padding)."""
    model.to(device).eval()
    order = torch.argsort(data["attention_mask"].sum(1), stable=True)
    out = []
    for s in range(0, len(order), batch):
        part = trim_padding({k: data[k][order[s : s + batch]] for k in MODEL_INPUTS if k in data})
        out.append(model(**{k: v.to(device) for k, v in part.items()}).logits.float().cpu())
    logits = torch.empty(len(order), out[0].shape[-1])
    logits[order] = torch.cat(out)
    return logits


def _encoder(model: torch.nn.Module):
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if base is None or not hasattr(base, "encoder") or not hasattr(base.encoder, "layer"):
        raise TypeError(
            f"{type(model).__name__} is not a BERT-style model (model.bert.encoder.layer); "
            "layer_subset_student copies BERT layers."
        )
    return base


def layer_subset_student(teacher: torch.nn.Module, keep: Sequence[int]) -> torch.nn.Module:
    """DistilBERT's initialisation (Sanh et al. 2019, section 3): a student of the same width with
    ``len(keep)`` layers, copied from the teacher's layers ``keep`` (e.g. every other one), with the
    teacher's embeddings, pooler and classification head."""
    layers = _encoder(teacher).encoder.layer
    if not keep or any(not 0 <= i < len(layers) for i in keep) or len(set(keep)) != len(keep):
        raise ValueError(
            "layer_subset_student: keep must be distinct layer "
            f"indices in 0..{len(layers) - 1}, got {list(keep)}."
        )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    student = type(teacher)(config)
    s_base, t_base = _encoder(student), _encoder(teacher)
    s_base.embeddings.load_state_dict(t_base.embeddings.state_dict())
    for i, j in enumerate(keep):
        s_base.encoder.layer[i].load_state_dict(layers[j].state_dict())
    if getattr(t_base, "pooler", None) is not None:
        s_base.pooler.load_state_dict(t_base.pooler.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student


def narrow_student(
    teacher: torch.nn.Module, hidden: int, layers: int, heads: int, seed: int = 0
) -> torch.nn.Module:
    """A narrower, shallower model of the teacher's class and vocabulary, randomly initialised:
    ``hidden`` wide, ``layers`` deep, feed-forward 4 x hidden (as in BERT)."""
    if hidden % heads:
        raise ValueError(
            f"narrow_student: hidden ({hidden}) must be a multiple of heads ({heads})."
        )
    config = copy.deepcopy(teacher.config)
    config.hidden_size, config.num_hidden_layers, config.num_attention_heads = hidden, layers, heads
    config.intermediate_size = 4 * hidden
    with seeded(seed):  # the init only: the caller's later draws are its own
        return type(teacher)(config)


class PieceBag(torch.nn.Module):
    """The smallest student: chapter 1's :class:`~tlcourse.bow.BagOfWords` over the teacher's word
    pieces (mean of piece embeddings -> ReLU layer -> linear), called like a transformers
    classifier. Tang et al. (2019) distil BERT into such simple networks; with no attention it is
    orders of magnitude cheaper than the teacher, and it sees no word order.

    With ``keep`` (the teacher's ids of the pieces it will train on) it has a row for each of them
    and one shared row for every other piece: rows it would never train are not stored, and each
    optimiser step touches fewer numbers.
    """

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        num_labels: int,
        dim: int = 64,
        keep: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if keep is None:
            keep = torch.arange(vocab_size)
        keep = torch.unique(torch.cat([keep.flatten().long(), torch.tensor([pad_id])]))
        id_map = torch.full((vocab_size,), len(keep), dtype=torch.long)  # the shared row
        id_map[keep] = torch.arange(len(keep))
        self.register_buffer("id_map", id_map, persistent=False)
        self.pad_row = int(id_map[pad_id])
        rows = len(keep) + int(len(keep) < vocab_size)
        self.bag = BagOfWords(rows, self.pad_row, num_labels, dim, dim)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        rows = self.id_map[input_ids].masked_fill(attention_mask == 0, self.pad_row)
        return SequenceClassifierOutput(logits=self.bag(rows))  # padding is not averaged


def bag_student(
    teacher: torch.nn.Module, dim: int = 64, seed: int = 0, keep: torch.Tensor | None = None
) -> PieceBag:
    """A :class:`PieceBag` over the teacher's vocabulary (or its pieces ``keep``) and classes,
    initialised with ``seed``."""
    config = teacher.config
    with seeded(seed):
        return PieceBag(config.vocab_size, config.pad_token_id or 0, config.num_labels, dim, keep)


def distil(
    student: torch.nn.Module,
    train: dict[str, torch.Tensor],
    test: dict[str, torch.Tensor],
    cfg: FinetuneConfig,
    alpha: float,
    tau: float,
    scale: bool = True,
    seed: int = 0,
    device="cpu",
    teacher: torch.nn.Module | None = None,
    cosine: float = 0.0,
) -> tuple[float, list[float]]:
    """Train ``student`` on encoded ``train``, which holds the teacher's logits in column
    ``teacher_logits`` (and ``labels`` unless ``alpha == 1``), with :func:`distillation_loss`;
    ``alpha = 0`` is plain fine-tuning on the labels. With ``cosine > 0`` the loss adds
    ``cosine`` x :func:`hidden_cosine_loss` between the student's last hidden states and those of
    ``teacher`` (run on every batch, in eval mode), as DistilBERT's third loss. Returns the test
    accuracy and the training losses."""
    if alpha > 0 and TEACHER not in train:
        raise ValueError(
            f"distil: the training data has no {TEACHER!r} column; "
            "add logits_of(teacher, data) first."
        )
    if alpha < 1 and "labels" not in train:
        raise ValueError("distil: this data has no labels; distil on unlabelled text with alpha=1.")
    if cosine > 0 and teacher is None:
        raise ValueError("distil: the cosine loss needs the teacher's states; pass teacher=.")
    states = {}
    if cosine > 0:  # the student's last hidden states, as its forward pass computes them
        teacher.to(device).eval()
        hook = _encoder(student).register_forward_hook(
            lambda module, args, out: states.__setitem__("student", out.last_hidden_state)
        )

    def loss(logits, batch):
        if alpha == 0:
            value = F.cross_entropy(logits, batch["labels"])
        else:
            labels = batch.get("labels") if alpha < 1 else None
            value = distillation_loss(logits, batch[TEACHER], labels, alpha, tau, scale)
        if cosine > 0:
            inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
            with torch.no_grad():
                target = _encoder(teacher)(**inputs).last_hidden_state
            value = value + cosine * hidden_cosine_loss(
                states["student"], target, batch["attention_mask"]
            )
        return value

    try:
        return finetune_classifier(student, train, test, cfg, seed, device, loss_fn=loss)
    finally:
        if cosine > 0:
            hook.remove()
            teacher.cpu()


@torch.no_grad()
def trim_vocabulary(
    model: torch.nn.Module, keep: torch.Tensor, unk_id: int
) -> tuple[torch.nn.Module, torch.Tensor]:
    """Keep only the word-embedding rows ``keep`` (the pieces a deployment will meet, e.g. those of
    the training text); returns the model, changed in place, and ``id_map``: old id -> new id, every
    dropped piece mapped to ``unk_id``'s new row. Apply :func:`remap` to inputs before calling the
    model.

    For a small model the vocabulary is most of the parameters (MiniLM: 11.7M of 22.7M), so this is
    the step that shrinks a half-depth student below half its teacher's size.
    """
    keep = torch.unique(torch.cat([keep.flatten().long(), torch.tensor([unk_id])]))
    embeddings = _encoder(model).embeddings.word_embeddings
    if int(keep.max()) >= embeddings.num_embeddings:
        raise ValueError(
            f"trim_vocabulary: id {int(keep.max())} is outside "
            f"the vocabulary of {embeddings.num_embeddings}."
        )
    id_map = torch.full(
        (embeddings.num_embeddings,), int((keep == unk_id).nonzero()), dtype=torch.long
    )
    id_map[keep] = torch.arange(len(keep))
    pad = embeddings.padding_idx
    smaller = torch.nn.Embedding(
        len(keep),
        embeddings.embedding_dim,
        padding_idx=int(id_map[pad]) if pad is not None and bool((keep == pad).any()) else None,
    )
    smaller.weight.copy_(embeddings.weight[keep])
    _encoder(model).embeddings.word_embeddings = smaller
    model.config.vocab_size = len(keep)
    return model, id_map


def remap(data: dict[str, torch.Tensor], id_map: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encoded data with its token ids translated by a :func:`trim_vocabulary` map."""
    return {**data, "input_ids": id_map[data["input_ids"]]}


@torch.no_grad()
def throughput(
    model: torch.nn.Module, data: dict[str, torch.Tensor], batch: int = 64, repeats: int = 2
) -> float:
    """Sentences per second for classifying every row of ``data`` on the CPU (batches of similar
    length, the fastest of ``repeats`` passes)."""
    model.cpu().eval()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        logits_of(model, data, batch)
        best = min(best, time.perf_counter() - began)
    return len(data["input_ids"]) / best
