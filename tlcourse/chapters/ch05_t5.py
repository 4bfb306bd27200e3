"""Chapter 5: the experiments around T5 — a tiny T5 pretrained by span corruption, a pretrained
encoder-decoder, and what mixing a low-resource task with another task does to it.

* :class:`T5ChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`sentinel_tokenizer` adds ``</s>`` and the sentinels ``<extra_id_i>`` to chapter 4's
  WordPiece;
* :func:`tiny_t5` builds a small ``T5ForConditionalGeneration``; :func:`span_pretrained` pretrains
  it (cached);
* :func:`warm_start` builds the pretrained text-to-text model: an ``EncoderDecoderModel`` whose
  encoder and decoder start from MiniLM (Rothe et al. 2020) in the cpu profile,
  ``google/t5-v1_1-small`` in the gpu one;
* :func:`task_splits` writes SST-2, RTE, AG News and Yelp reviews as text; :func:`mixing_runs`
  trains one model per run (a task alone or a mixture) and seed, and tabulates every task's scores.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ..config import Profiles
from .. import data, hub, t5
from ..t5_train import (
    MixConfig,
    TextSplit,
    encode_split,
    evaluate,
    constant_answer,
    mean_loss,
    pretrain_span_corruption,
    train_mixture,
)
from ..text import corpus_texts
from ..train import progress_bar, seeded
from ..wordpiece import cached_wordpiece

TASK_NAMES = ("sst2", "rte", "ag_news", "reviews")


@dataclass(frozen=True)
class TinyT5Config:
    """A small T5 (the paper's "base" is 12 + 12 layers of 768; this is 2 + 2 of 128)."""

    d_model: int = 128
    layers: int = 2
    heads: int = 4
    d_ff: int = 512
    dropout: float = 0.1


@dataclass(frozen=True)
class T5ChapterConfig:
    """Sizes of chapter 5 for one profile."""

    vocab_size: int = 8000  # chapter 4's WordPiece vocabulary (+ </s> + sentinels)
    sentinels: int = 100
    tiny: TinyT5Config = field(default_factory=TinyT5Config)
    span_len: int = 64  # corpus tokens per pretraining example, before corruption
    span: MixConfig = field(default_factory=lambda: MixConfig(steps=120, batch=32, lr=2e-3))
    # training examples per task (None = all): SST-2 and AG News are the high-resource tasks,
    # 20 labelled Yelp reviews the low-resource one (drawn from a pool of 200; 800 others test)
    train_sizes: dict = field(
        default_factory=lambda: {"sst2": 3200, "rte": 500, "ag_news": 1600, "reviews": 20}
    )
    test_sizes: dict = field(
        default_factory=lambda: {"sst2": None, "rte": None, "ag_news": 500, "reviews": None}
    )
    max_len: int = 128
    warm: str = "minilm"  # the pretrained text-to-text model: "minilm" or "t5-v1_1-small"
    decoder_layers: int = 2  # MiniLM layers that warm-start the decoder
    decoder_dropout: float = 0.0  # off: with 100 steps, dropout only delays learning
    freeze_encoder: bool = True
    warm_mix: MixConfig = field(default_factory=lambda: MixConfig(steps=100, batch=32, lr=3e-4))
    seeds: int = 3  # every run of the mixing experiment, with its own init and data order
    # the runs: the tasks trained together and how their rates are set (T5 section 3.5.2)
    runs: dict = field(
        default_factory=lambda: {
            "reviews alone": (("reviews",), "equal"),
            "+ SST-2, equal": (("reviews", "sst2"), "equal"),
            "+ SST-2, proportional": (("reviews", "sst2"), "proportional"),
            "+ AG News, equal": (("reviews", "ag_news"), "equal"),
        }
    )

    def rates(self, sizes: dict[str, int]) -> dict[str, dict[str, float]]:
        """Every run's mixing rates for training sets of ``sizes`` examples."""
        return {
            name: t5.mixing_rates({n: sizes[n] for n in tasks}, strategy)
            for name, (tasks, strategy) in self.runs.items()
        }


def smoke(cfg: T5ChapterConfig) -> T5ChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        span=replace(cfg.span, steps=5, batch=8),
        train_sizes={"sst2": 160, "rte": 40, "ag_news": 160, "reviews": 20},
        test_sizes={"sst2": 80, "rte": 40, "ag_news": 80, "reviews": 80},
        warm_mix=replace(cfg.warm_mix, steps=5, batch=8),
        seeds=2,
    )


CONFIGS = Profiles(
    {
        "cpu": T5ChapterConfig(),
        "gpu": T5ChapterConfig(
            tiny=TinyT5Config(d_model=256, layers=4, heads=4, d_ff=1024),
            span=MixConfig(steps=10_000, batch=128, lr=2e-3),
            train_sizes={"sst2": None, "rte": None, "ag_news": None, "reviews": 20},
            test_sizes={"sst2": None, "rte": None, "ag_news": None, "reviews": None},
            warm="t5-v1_1-small",
            freeze_encoder=False,
            warm_mix=MixConfig(steps=1000, batch=64, lr=3e-4),
            seeds=5,
        ),
    },
    smoke=smoke,
)


# --------------------------------------------------------------------------------------------
# Tokenizer and models


def sentinel_tokenizer(cfg: T5ChapterConfig, texts: list[str] | None = None, verbose: bool = True):
    """Chapter 4's WordPiece (same cache entry) with T5's end-of-sequence ``</s>`` and
    ``cfg.sentinels`` sentinel tokens ``<extra_id_0>``, ``<extra_id_1>``, ... added as special
    tokens."""
    texts = corpus_texts() if texts is None else texts
    tokenizer = cached_wordpiece("ch04-wordpiece", texts, cfg.vocab_size, verbose=verbose)
    tokenizer.add_special_tokens(
        {
            "eos_token": "</s>",
            "additional_special_tokens": [f"<extra_id_{i}>" for i in range(cfg.sentinels)],
        }
    )
    return tokenizer


def sentinel_ids(tokenizer) -> list[int]:
    """The ids of ``<extra_id_0>``, ``<extra_id_1>``, ... in order."""
    ids, i = [], 0
    while f"<extra_id_{i}>" in tokenizer.get_vocab():
        ids.append(tokenizer.convert_tokens_to_ids(f"<extra_id_{i}>"))
        i += 1
    if not ids:
        raise ValueError(
            "sentinel_ids: this tokenizer has no <extra_id_0>; build it with sentinel_tokenizer()."
        )
    return ids


def tiny_t5(cfg: TinyT5Config, tokenizer, seed: int = 0):
    """A randomly initialised ``T5ForConditionalGeneration`` of size ``cfg`` (T5 v1.1's gated-GELU
    feed-forward; the decoder starts from the pad token, as in T5)."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=cfg.d_model,
        d_kv=cfg.d_model // cfg.heads,
        d_ff=cfg.d_ff,
        num_layers=cfg.layers,
        num_heads=cfg.heads,
        dropout_rate=cfg.dropout,
        feed_forward_proj="gated-gelu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    with seeded(seed):  # the init only
        return T5ForConditionalGeneration(config)


def corpus_rows(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """The corpus as one stream of WordPiece ids cut into rows of ``length`` (no special tokens)."""
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    stream = np.fromiter((i for ids in pieces for i in ids), dtype=np.int64)
    rows = len(stream) // length
    return torch.from_numpy(stream[: rows * length].reshape(rows, length))


def span_pretrained(
    cfg: T5ChapterConfig, tokenizer, texts: list[str], device="cpu", progress: bool = True
):
    """:func:`tiny_t5` pretrained with span corruption on ``texts`` (cached under
    ``TLCOURSE_CACHE``)."""
    rows = corpus_rows(tokenizer, texts, cfg.span_len)
    key = {
        "rows": len(rows),
        "vocab": len(tokenizer),
        "span_len": cfg.span_len,
        "tiny": asdict(cfg.tiny),
        "span": asdict(cfg.span),
    }
    train = lambda model: pretrain_span_corruption(  # noqa: E731
        model,
        rows,
        sentinel_ids(tokenizer),
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
        cfg.span,
        device,
        progress,
    )
    return hub.cached_module(
        "ch05-span-t5", key, lambda: tiny_t5(cfg.tiny, tokenizer), train, verbose=progress
    )


def with_available_model(cfg: T5ChapterConfig) -> T5ChapterConfig:
    """``cfg`` if its pretrained model can be loaded here; otherwise the cpu profile's warm start
    from MiniLM (frozen encoder, two decoder layers) with ``cfg``'s sizes, and a printed note.

    The gpu profile's ``google/t5-v1_1-small`` comes from the hub: a run offline without a saved
    copy (``TLCOURSE_MODEL_T5_V1_1_SMALL``) goes on with MiniLM rather than stopping.
    """
    if cfg.warm == "minilm":
        return cfg
    try:
        hub.resolve(cfg.warm)
    except hub.ModelNotFoundError as err:
        cpu = T5ChapterConfig()
        print(
            f"note: {cfg.warm} cannot be loaded here ({str(err).splitlines()[0]}), so this run "
            "warm-starts from MiniLM as the cpu profile does, with this profile's sizes. "
            f"{str(err).splitlines()[-1]}"
        )
        return replace(
            cfg,
            warm=cpu.warm,
            freeze_encoder=cpu.freeze_encoder,
            decoder_layers=cpu.decoder_layers,
            decoder_dropout=cpu.decoder_dropout,
        )
    return cfg


def warm_start(cfg: T5ChapterConfig, seed: int = 0):
    """The pretrained text-to-text model and its tokenizer.

    ``"minilm"``: ``EncoderDecoderModel.from_encoder_decoder_pretrained`` with MiniLM as the encoder
    and its first ``cfg.decoder_layers`` layers as the decoder (new, randomly initialised
    cross-attention; Rothe et al. 2020); ``[SEP]`` ends the targets. With ``cfg.freeze_encoder``
    the encoder and the (tied) word embeddings stay fixed and only the decoder's layers train.
    ``"t5-v1_1-small"``: Google's T5 v1.1 small, pretrained on C4 only (no supervised tasks).
    """
    from transformers import EncoderDecoderModel, T5ForConditionalGeneration

    if cfg.warm == "minilm":
        path = hub.resolve("minilm")
        tokenizer = hub.load_tokenizer("minilm")
        tokenizer.eos_token = tokenizer.sep_token
        with seeded(seed):  # the new cross-attention's init only
            model = EncoderDecoderModel.from_encoder_decoder_pretrained(
                path,
                path,
                decoder_num_hidden_layers=cfg.decoder_layers,
                decoder_hidden_dropout_prob=cfg.decoder_dropout,
                decoder_attention_probs_dropout_prob=cfg.decoder_dropout,
            )
        for c in (
            model.config,
            model.generation_config,
        ):  # BERT has no start or end token: [CLS] and [SEP] serve
            c.decoder_start_token_id, c.pad_token_id = (
                tokenizer.cls_token_id,
                tokenizer.pad_token_id,
            )
            c.eos_token_id = tokenizer.sep_token_id
        if cfg.freeze_encoder:
            model.decoder.get_input_embeddings().weight.requires_grad_(False)
    elif cfg.warm == "t5-v1_1-small":
        model, tokenizer = (
            hub.load_model("t5-v1_1-small", T5ForConditionalGeneration),
            hub.load_tokenizer("t5-v1_1-small"),
        )
    else:
        raise ValueError(
            f"warm_start: unknown model {cfg.warm!r}; use 'minilm' or 't5-v1_1-small'."
        )
    if cfg.freeze_encoder:
        model.get_encoder().requires_grad_(False)
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# Tasks as text, and the mixing experiment


def load_reviews(data_dir=None):
    """The low-resource task: Yelp's 1,000 UCI review sentences (Kotzias et al. 2015), split once
    into a class-balanced training pool of 200 and 800 test sentences."""
    from datasets import DatasetDict

    yelp = data.load_uci_sentiment("yelp", data_dir=data_dir)
    pool = data.label_budget_indices(np.asarray(yelp["label"]), [200], seed=0)[200]
    test = np.setdiff1d(np.arange(len(yelp)), pool)
    return DatasetDict(
        {"train": yelp.select(sorted(pool.tolist())), "test": yelp.select(test.tolist())}
    )


def _subset(dataset, size: int | None, seed: int = 0):
    return (
        dataset if size is None or size >= len(dataset) else data.budget_subset(dataset, size, seed)
    )


def task_splits(
    cfg: T5ChapterConfig,
    tokenizer,
    encoder=None,
    max_len: int | None = None,
    device="cpu",
    data_dir=None,
    progress: bool = True,
    tasks=TASK_NAMES,
) -> tuple[dict[str, TextSplit], dict[str, TextSplit]]:
    """``(train, test)`` :class:`TextSplit` s of ``tasks`` (all four by default; class-balanced
    seeded subsets of ``cfg.train_sizes``; the validation sets, AG News' test set and the reviews
    outside the pool as tests). With a frozen ``encoder`` the inputs are its states."""
    loaders = {
        "sst2": (data.load_sst2, "validation"),
        "rte": (data.load_rte, "validation"),
        "ag_news": (data.load_ag_news, "test"),
        "reviews": (load_reviews, "test"),
    }
    unknown = [name for name in tasks if name not in loaders]
    if unknown:
        raise ValueError(f"task_splits: unknown tasks {unknown}; choose from {list(loaders)}")
    train, test = {}, {}
    max_len = max_len or cfg.max_len
    for name in progress_bar(tasks, progress=progress, desc="encoding tasks", leave=False):
        load, test_split = loaders[name]
        dataset = load(data_dir=data_dir)
        tr, te = dataset["train"], dataset[test_split]
        train[name] = encode_split(
            tokenizer, name, _subset(tr, cfg.train_sizes[name]), max_len, encoder, device
        )
        test[name] = encode_split(
            tokenizer, name, _subset(te, cfg.test_sizes[name]), max_len, encoder, device
        )
    return train, test


def score_table(
    model, tokenizer, test: dict[str, TextSplit], device="cpu", generate: bool = True
) -> pd.DataFrame:
    """One row per task: :func:`tlcourse.t5_train.evaluate`."""
    return pd.DataFrame(
        {n: evaluate(model, tokenizer, s, device, generate) for n, s in test.items()}
    ).T


def mixing_runs(
    build,
    tokenizer,
    train: dict[str, TextSplit],
    test: dict[str, TextSplit],
    runs: dict[str, dict[str, float]],
    cfg: MixConfig,
    seeds: int = 1,
    device="cpu",
    progress: bool = True,
    generate: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Train ``build(seed)`` once per run (its tasks' mixing ``rates``) and seed, every run for
    ``cfg.steps`` steps with data order ``seed``; evaluate every task it trained on. Generation is
    scored for the first seed only (NaN for the others). Returns the long table (one row per run,
    seed and task) and the histories, keyed ``(run, seed)``."""
    rows, histories = [], {}
    jobs = [(run, seed) for run in runs for seed in range(seeds)]
    for run, seed in progress_bar(jobs, progress=progress, desc="runs"):
        rates = runs[run]
        model = build(seed)
        began = time.perf_counter()
        history = train_mixture(
            model,
            {n: train[n] for n in rates},
            rates,
            MixConfig(cfg.steps, cfg.batch, cfg.lr, cfg.warmup, seed),
            tokenizer.pad_token_id,
            device,
            progress=False,
            desc=run,
        )
        histories[run, seed] = history
        seconds = time.perf_counter() - began
        for task_name in rates:
            scores = evaluate(model, tokenizer, test[task_name], device, generate and seed == 0)
            rows.append(
                {
                    "run": run,
                    "seed": seed,
                    "task": task_name,
                    "rate": rates[task_name],
                    "examples": int(history.metrics[f"seen {task_name}"][0]),
                    "train loss": mean_loss(history, task_name),
                    "generate": float("nan"),
                    "invalid": float("nan"),
                    **scores,
                    "constant answer": constant_answer(test[task_name]),
                    "seconds": seconds,
                }
            )
    return pd.DataFrame(rows), histories
