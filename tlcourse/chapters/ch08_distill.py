"""Chapter 8: the experiments — a MiniLM teacher fine-tuned on SST-2, two kinds of student trained
with hard labels or with distillation, a temperature sweep, the teacher as a labelling function for
text without labels, and the deployment table.

* :class:`DistillChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`splits` gives the labelled, unlabelled, other-domain and dev sentences, encoded once;
* :func:`teacher` fine-tunes (or loads from the cache) the teacher and adds its logits to every
  split;
* :func:`make_student` builds a student by name; :func:`deployment_table` measures them all.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import datasets
import numpy as np
import pandas as pd
import torch

from .. import data, hub
from ..distill import (
    TEACHER,
    layer_subset_student,
    logits_of,
    narrow_student,
    remap,
    throughput,
    trim_vocabulary,
)
from ..finetune import FinetuneConfig, encode, evaluate, finetune_classifier
from ..train import parameter_counts, seeded


@dataclass(frozen=True)
class DistillChapterConfig:
    """Sizes of chapter 8 for one profile."""

    labelled: int = 4000  # SST-2 training sentences with labels (class-balanced subset)
    unlabelled: int = 8000  # further SST-2 training sentences, their labels dropped
    teacher: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-4, max_len=64
        )
    )
    half_layers: tuple[int, ...] = (0, 2, 4)  # DistilBERT: every other layer of the teacher
    half: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-4, max_len=64
        )
    )
    small_hidden: int = 128  # the narrow student, trained from scratch
    small_layers: int = 2
    small_heads: int = 2
    small: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=3.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-3, max_len=64
        )
    )
    alpha: float = 0.5
    tau: float = 2.0
    taus: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    throughput_batch: int = 64


CONFIGS = {
    "cpu": DistillChapterConfig(),
    "gpu": DistillChapterConfig(
        labelled=16_000,
        unlabelled=40_000,
        teacher=FinetuneConfig(
            epochs=2.0, min_steps=10, max_steps=10_000, batch=32, lr=5e-5, max_len=64
        ),
    ),
}


def splits(cfg: DistillChapterConfig, tokenizer) -> dict[str, dict[str, torch.Tensor]]:
    """Encoded sentences: ``labelled`` (SST-2 train, class-balanced), ``unlabelled`` (other SST-2
    train sentences, labels kept only to measure agreement, never trained on), ``uci`` (the UCI
    Amazon, IMDb and Yelp sentences: another domain of reviews) and ``dev`` (SST-2 validation,
    872)."""
    sst2 = data.load_sst2()
    train = sst2["train"]
    rows = data.label_budget_indices(np.asarray(train["label"]), [cfg.labelled], seed=0)[
        cfg.labelled
    ]
    rest = np.setdiff1d(np.arange(len(train)), rows)
    unlabelled = train.select(np.random.default_rng(1).permutation(rest)[: cfg.unlabelled].tolist())
    uci = datasets.concatenate_datasets(list(data.load_uci_sentiment().values()))
    parts = {
        "labelled": train.select(sorted(rows.tolist())),
        "unlabelled": unlabelled,
        "uci": uci,
        "dev": sst2["validation"],
    }
    return {
        name: encode(tokenizer, ds, ["sentence"], cfg.teacher.max_len) for name, ds in parts.items()
    }


def teacher(cfg: DistillChapterConfig, encoded: dict, device="cpu") -> tuple[torch.nn.Module, dict]:
    """MiniLM fine-tuned on the labelled sentences (or loaded from the cache); adds its logits to
    every split as column ``teacher_logits``. Returns the model and
    ``{"accuracy", "seconds", "loss"}``."""
    import time

    from transformers import AutoModelForSequenceClassification

    def build():
        return hub.load_model("minilm", AutoModelForSequenceClassification, num_labels=2)

    def train(model):
        began = time.perf_counter()
        accuracy, losses = finetune_classifier(
            model, encoded["labelled"], encoded["dev"], cfg.teacher, seed=0, device=device
        )
        return {"accuracy": accuracy, "seconds": time.perf_counter() - began, "loss": losses}

    key = {"labelled": cfg.labelled, "finetune": dataclasses.asdict(cfg.teacher)}
    with seeded(0):  # the head's init and the dropout of training, as one stream
        model, meta = hub.cached_module("ch08-teacher", key, build, train, verbose=False)
    model.eval()

    def logits():  # the teacher's outputs on every split: a pure function of the cached teacher
        return {
            name: logits_of(model, split, device=device) for name, split in encoded.items()
        }, None

    rows = {
        name: [len(split["input_ids"]), int(split["input_ids"].sum())]
        for name, split in encoded.items()
    }
    cached, _ = hub.cached_tensors(
        "ch08-teacher-logits", {**key, "rows": rows}, logits, verbose=False
    )
    for name, split in encoded.items():
        split[TEACHER] = cached[name]
    return model.cpu(), meta


def make_student(
    name: str, cfg: DistillChapterConfig, teacher_model: torch.nn.Module, seed: int = 0
) -> torch.nn.Module:
    """``"half"``: the teacher's layers ``cfg.half_layers`` (DistilBERT's initialisation);
    ``"small"``: a narrow model trained from scratch (``cfg.small_hidden`` wide,
    ``cfg.small_layers`` deep)."""
    if name == "half":
        return layer_subset_student(teacher_model, cfg.half_layers)
    if name == "small":
        return narrow_student(
            teacher_model, cfg.small_hidden, cfg.small_layers, cfg.small_heads, seed=seed
        )
    raise ValueError(f"make_student: unknown student {name!r}; use 'half' or 'small'.")


def agreement(model: torch.nn.Module, split: dict[str, torch.Tensor]) -> float:
    """Share of sentences on which ``model`` predicts the teacher's class."""
    return evaluate(model, {**split, "labels": split[TEACHER].argmax(-1)})


def trimmed(
    student: torch.nn.Module,
    encoded: dict,
    unk_id: int,
    sources: tuple[str, ...] = ("labelled", "unlabelled", "uci"),
) -> tuple[torch.nn.Module, dict]:
    """A copy of ``student`` keeping only the word pieces that occur in the training text
    ``sources`` (:func:`tlcourse.distill.trim_vocabulary`), and the dev split re-encoded for it
    (pieces it never saw become ``[UNK]``)."""
    keep = torch.cat([encoded[name]["input_ids"].flatten() for name in sources])
    model, id_map = trim_vocabulary(copy.deepcopy(student), keep, unk_id)
    return model, remap(encoded["dev"], id_map)


def deployment_table(
    models: dict[str, tuple[torch.nn.Module, dict]], batch: int = 64
) -> pd.DataFrame:
    """Per model (``name -> (model, encoded dev data)``): parameters, CPU throughput on the dev
    sentences (the same batches for all), accuracy, and the shares of the teacher's (the first
    entry's)."""
    rows = []
    for name, (model, dev) in models.items():
        rows.append(
            {
                "model": name,
                "parameters": parameter_counts(model)[1],
                "sentences/s": throughput(model, dev, batch),
                "accuracy": evaluate(model, dev),
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    first = table.iloc[0]
    table["params share"] = table.parameters / first.parameters
    table["speed-up"] = table["sentences/s"] / first["sentences/s"]
    table["accuracy share"] = table.accuracy / first.accuracy
    return table
