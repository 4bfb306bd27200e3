"""Chapter 5: training and evaluating text-to-text models — span-corruption pretraining, multi-task
training on a mixture, and evaluation by rank classification and by generation.

Every model here is a ``transformers`` encoder-decoder (``T5ForConditionalGeneration`` or
``EncoderDecoderModel``) trained with its own loss, the cross-entropy of the target string
(Raffel et al. 2020, section 2.1, "teacher forcing"). A task's examples are a :class:`TextSplit`:
the encoder inputs are token ids, or — when the encoder is frozen — the encoder's output states,
computed once (:func:`encoder_states`), which makes each training step a decoder-only step.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import t5
from .train import History, fit, seeded


@dataclass
class TextSplit:
    """One task's examples for a text-to-text model.

    ``inputs`` holds, per example, its token ids (a long tensor) or its frozen encoder states
    (a float tensor, length x hidden); ``targets`` the target string's ids ending in ``eos``;
    ``labels`` the class ids the target strings stand for.
    """

    task: str
    inputs: list[torch.Tensor]
    targets: list[list[int]]
    labels: torch.Tensor
    cut: int = 0  # inputs whose first field (a pair's premise) was shortened to fit

    def __len__(self) -> int:
        return len(self.labels)


def encode_split(
    tokenizer, name: str, rows, max_len: int = 128, encoder=None, device="cpu"
) -> TextSplit:
    """Write ``rows`` of task ``name`` as text (:func:`tlcourse.t5.to_text`) and tokenise them, at
    most ``max_len`` tokens: a long input loses the end of its first field (a premise, never the
    hypothesis; :func:`tlcourse.t5.fit_sources`). With an ``encoder``, replace the ids by its
    (frozen) output states."""
    rows = list(rows)
    _, target_texts = t5.to_text(name, rows)
    sources, cut = t5.fit_sources(tokenizer, name, rows, max_len)
    ids = [torch.tensor(i) for i in tokenizer(sources)["input_ids"]]
    targets = [
        tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for t in target_texts
    ]
    if encoder is not None:
        ids = encoder_states(encoder, ids, tokenizer.pad_token_id, device=device)
    return TextSplit(name, ids, targets, torch.tensor([r["label"] for r in rows]), cut)


@torch.no_grad()
def encoder_states(
    encoder, ids: Sequence[torch.Tensor], pad_id: int, batch: int = 64, device="cpu"
) -> list[torch.Tensor]:
    """The encoder's last hidden states for each id sequence (unpadded), computed in length-sorted
    batches."""
    encoder.to(device).eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(ids)
    for s in range(0, len(order), batch):
        rows = order[s : s + batch]
        enc = collate([ids[i] for i in rows], pad_id, device)
        states = encoder(**enc).last_hidden_state.float().cpu()
        for j, i in enumerate(rows):
            out[i] = states[j, : len(ids[i])].clone()
    return out


def collate(inputs: Sequence[torch.Tensor], pad_id: int, device="cpu") -> dict:
    """The encoder-side keyword arguments of a batch: ``input_ids`` + ``attention_mask``, or, for
    frozen states, ``encoder_outputs`` + ``attention_mask`` (both padded to the longest row)."""
    length = max(len(x) for x in inputs)
    mask = torch.zeros(len(inputs), length, dtype=torch.long)
    for i, x in enumerate(inputs):
        mask[i, : len(x)] = 1
    if inputs[0].is_floating_point():
        from transformers.modeling_outputs import BaseModelOutput

        states = torch.zeros(len(inputs), length, inputs[0].shape[-1])
        for i, x in enumerate(inputs):
            states[i, : len(x)] = x
        return {
            "encoder_outputs": BaseModelOutput(last_hidden_state=states.to(device)),
            "attention_mask": mask.to(device),
        }
    ids = torch.full((len(inputs), length), pad_id, dtype=torch.long)
    for i, x in enumerate(inputs):
        ids[i, : len(x)] = x
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


# --------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class MixConfig:
    """Steps, batch size and optimiser of one (multi-task) training run."""

    steps: int = 150
    batch: int = 32
    lr: float = 1e-3
    warmup: float = 0.1  # share of the steps
    seed: int = 0


@contextmanager
def _output_layer_at(model, keep: torch.Tensor):
    """Apply the model's output layer (hidden -> vocabulary) only at the positions ``keep``: the
    logits come back flat, ``(keep.sum(), vocabulary)``. Padding positions cost a full softmax
    layer each; with targets of 2 to 6 tokens in one batch that is about half the step."""
    handle = model.get_output_embeddings().register_forward_pre_hook(
        lambda module, args: (args[0][keep],)
    )
    try:
        yield
    finally:
        handle.remove()


def _fit(model, batches, loss_fn, cfg: MixConfig, progress: bool, desc: str) -> History:
    """:func:`tlcourse.train.fit` with T5's schedule here (AdamW, weight decay 0.01, clipping at 1,
    linear warm-up and decay), the dropout of training drawn from ``cfg.seed``."""
    with seeded(cfg.seed):
        return fit(
            model,
            batches,
            loss_fn,
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=0.01,
            clip_grad=1.0,
            warmup=int(cfg.warmup * cfg.steps),
            progress=progress,
            desc=desc,
        )


def train_mixture(
    model,
    splits: dict[str, TextSplit],
    rates: dict[str, float],
    cfg: MixConfig,
    pad_id: int,
    device="cpu",
    progress: bool = True,
    desc: str = "multi-task",
) -> History:
    """Train ``model`` on batches drawn from ``splits`` at the mixing ``rates``
    (:class:`tlcourse.t5.MixtureSampler`).

    All tasks share every parameter and one loss, the mean over a batch's target tokens: in
    expectation ``L = Σ_t λ_t L_t`` with ``λ_t ∝ r_t · m_t``, the task's sampling rate times its
    mean target length in tokens (per example, the tasks weigh as their rates). The history's
    ``metrics`` hold each task's training loss per step (``loss <task>``, NaN when the batch had
    none of it) and the examples seen per task.
    """
    rates = {n: r for n, r in rates.items() if r > 0}
    missing = sorted(set(rates) - set(splits))
    if missing:
        raise ValueError(
            f"train_mixture: rates name tasks {missing} that have no training split; "
            f"splits: {sorted(splits)}."
        )
    sampler = t5.MixtureSampler({n: len(splits[n]) for n in rates}, rates, seed=cfg.seed)
    per_task: dict[str, list[float]] = {n: [] for n in splits}
    seen = {n: 0 for n in splits}

    def batches():
        while True:
            yield sampler.batch(cfg.batch)

    def loss_fn(model, pairs):
        kwargs = collate([splits[n].inputs[i] for n, i in pairs], pad_id, device)
        labels = t5.pad_targets([splits[n].targets[i] for n, i in pairs]).to(device)
        valid = labels != -100
        decoder_ids = model.prepare_decoder_input_ids_from_labels(labels=labels)
        with _output_layer_at(model, valid):  # logits of the real target tokens only
            logits = model(**kwargs, decoder_input_ids=decoder_ids).logits
        token_loss = F.cross_entropy(logits, labels[valid], reduction="none")
        row = valid.nonzero()[:, 0]
        per_row = torch.zeros(len(labels), device=token_loss.device)
        per_row = per_row.index_add(0, row, token_loss.detach())
        example_loss = (per_row / valid.sum(1)).cpu()
        names = [n for n, _ in pairs]
        for n in splits:
            rows = [k for k, m in enumerate(names) if m == n]
            seen[n] += len(rows)
            per_task[n].append(example_loss[rows].mean().item() if rows else float("nan"))
        # the mean over target tokens, as the model's own loss
        return token_loss.mean()

    model.to(device)
    history = _fit(model, batches(), loss_fn, cfg, progress, desc)
    for n in splits:
        history.metrics[f"loss {n}"] = per_task[n]
        history.metrics[f"seen {n}"] = [float(seen[n])]
    model.cpu()
    return history


def corrupted_batch(
    rows: torch.Tensor,
    sentinels: Sequence[int],
    eos: int,
    pad_id: int,
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span: float = 3.0,
) -> dict:
    """A span-corruption batch (:func:`tlcourse.t5.span_corrupt` on each row): model inputs and
    labels."""
    pairs = [
        t5.span_corrupt(r.tolist(), sentinels, generator, eos, noise_density, mean_span)
        for r in rows
    ]
    batch = collate([torch.tensor(i) for i, _ in pairs], pad_id)
    batch["labels"] = t5.pad_targets([t for _, t in pairs])
    return batch


def pretrain_span_corruption(
    model,
    rows: torch.Tensor,
    sentinels: Sequence[int],
    eos: int,
    pad_id: int,
    cfg: MixConfig,
    device="cpu",
    progress: bool = True,
) -> dict:
    """T5's unsupervised objective (Raffel et al. 2020, section 3.1.4): fresh random spans every
    step."""
    gen = torch.Generator().manual_seed(cfg.seed)

    def batches():
        while True:
            yield corrupted_batch(
                rows[torch.randint(len(rows), (cfg.batch,), generator=gen)],
                sentinels,
                eos,
                pad_id,
                gen,
            )

    def loss_fn(model, batch):
        return model(**{k: v.to(device) for k, v in batch.items()}).loss

    model.to(device)
    start = time.perf_counter()
    history = _fit(model, batches(), loss_fn, cfg, progress, "span corruption")
    model.cpu()
    return {
        "seconds": time.perf_counter() - start,
        "loss": history.loss,
        "rows": len(rows),
        "epochs": cfg.steps * cfg.batch / len(rows),
    }


# --------------------------------------------------------------------------------------------
# Evaluation


def _states(model, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder states and mask of a collated batch (running the encoder unless they are given)."""
    if "encoder_outputs" in kwargs:
        return kwargs["encoder_outputs"].last_hidden_state, kwargs["attention_mask"]
    out = model.get_encoder()(
        input_ids=kwargs["input_ids"], attention_mask=kwargs["attention_mask"]
    )
    return out.last_hidden_state, kwargs["attention_mask"]


@torch.no_grad()
def label_logliks(
    model, tokenizer, split: TextSplit, batch: int = 64, device="cpu"
) -> torch.Tensor:
    """``log p(label string | input)`` of every label string for every example, shape
    ``(n, classes)``: the sum over the label's tokens (and ``eos``) of the decoder's
    log-probabilities."""
    from transformers.modeling_outputs import BaseModelOutput

    target_ids = t5.encode_targets(tokenizer, t5.task(split.task).labels)  # (C, T), -100 padded
    c = len(target_ids)
    model.to(device).eval()
    out = []
    for s in range(0, len(split), batch):
        states, mask = _states(
            model, collate(split.inputs[s : s + batch], tokenizer.pad_token_id, device)
        )
        n = len(states)
        y = target_ids.repeat(n, 1).to(device)  # every label for every input
        logits = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=states.repeat_interleave(c, 0)),
            attention_mask=mask.repeat_interleave(c, 0),
            labels=y,
        ).logits
        logp = logits.float().log_softmax(-1).gather(-1, y.clamp(min=0)[..., None])[..., 0]
        out.append(logp.masked_fill(y == -100, 0.0).sum(-1).view(n, c).cpu())
    model.cpu()
    return torch.cat(out)


@torch.no_grad()
def generate_labels(
    model, tokenizer, split: TextSplit, batch: int = 64, max_new_tokens: int = 8, device="cpu"
) -> tuple[torch.Tensor, list[str]]:
    """Greedy generation, parsed with :func:`tlcourse.t5.parse_label`: predicted ids
    (:data:`tlcourse.t5.INVALID` when the text is no label) and the generated strings."""
    from transformers.modeling_outputs import BaseModelOutput

    model.to(device).eval()
    texts: list[str] = []
    for s in range(0, len(split), batch):
        states, mask = _states(
            model, collate(split.inputs[s : s + batch], tokenizer.pad_token_id, device)
        )
        generated = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=states),
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
        )
        texts.extend(tokenizer.batch_decode(generated, skip_special_tokens=True))
    model.cpu()
    return torch.tensor([t5.parse_label(split.task, t) for t in texts]), texts


def evaluate(
    model, tokenizer, split: TextSplit, device="cpu", generate: bool = True
) -> dict[str, float]:
    """Rank-classification accuracy, generation accuracy and invalid share, the mean negative
    log-likelihood of the correct label string (nats), and the share of inputs given the most
    common answer."""
    logliks = label_logliks(model, tokenizer, split, device=device)
    answers = logliks.argmax(-1)
    out = {
        "rank": (answers == split.labels).float().mean().item(),
        "label nll": -logliks.gather(1, split.labels[:, None]).mean().item(),
        # near 1: (almost) every input gets the same answer, the task has collapsed
        "top answer": torch.bincount(answers).max().item() / len(answers),
    }
    if generate:
        predictions, _ = generate_labels(model, tokenizer, split, device=device)
        s = t5.scores(predictions, split.labels.tolist())
        out.update({"generate": s["accuracy"], "invalid": s["invalid"]})
    return out


def constant_answer(test: TextSplit) -> float:
    """Accuracy of the best constant answer: always giving the test split's most frequent label."""
    return torch.bincount(test.labels).max().item() / len(test)


def mean_loss(history: History, task: str) -> float:
    """Mean training loss of ``task`` over the last fifth of the steps it appeared in."""
    values = np.array(history.metrics[f"loss {task}"])
    values = values[~np.isnan(values)]
    return float(values[-max(1, len(values) // 5) :].mean()) if len(values) else float("nan")
