"""tlcourse.mlm / wordpiece / finetune (chapter 4): masking statistics against the specification and
transformers' collator, the gathered-head loss, the tokenizer round trip, and fine-tuning."""
import random

import pytest
import torch

from tlcourse import finetune, mlm, wordpiece

TEXTS = ["the queen of hearts made some tarts", "alice was beginning to get very tired",
         "the white rabbit ran past with a watch", "down the rabbit hole went alice"] * 50


@pytest.fixture(scope="module")
def tokenizer():
    return wordpiece.train_wordpiece(TEXTS, vocab_size=200, min_frequency=1)


def test_masking_statistics_over_a_million_tokens():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (1000, 1024), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    special[:, 900:] = True  # padding
    inputs, labels = mlm.mask_tokens(ids, special, mask_id=4, vocab_size=1000, generator=gen)
    chosen = labels != -100
    eligible = (~special).sum().item()
    assert eligible > 800_000
    assert abs(chosen.sum().item() / eligible - 0.15) < 0.002
    assert not chosen[special].any() and torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()
    masked = (inputs[chosen] == 4).sum().item() / n
    unchanged = (inputs[chosen] == ids[chosen]).sum().item() / n
    random = 1 - masked - unchanged
    # A random replacement can draw the original token (p = 1/1000): it then counts as unchanged.
    assert abs(masked - 0.8) < 0.005 and abs(unchanged - 0.1 - 0.1 / 1000) < 0.005 and abs(random - 0.1) < 0.005
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masking_agrees_with_transformers_collator(tokenizer):
    from transformers import DataCollatorForLanguageModeling

    texts = TEXTS[:64]
    enc = tokenizer(texts, padding="max_length", max_length=16, truncation=True, return_special_tokens_mask=True,
                    return_tensors="pt")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    ours, theirs = [], []
    gen = torch.Generator().manual_seed(1)
    special = enc["special_tokens_mask"].bool()
    for _ in range(300):
        _, labels = mlm.mask_tokens(enc["input_ids"], special, tokenizer.mask_token_id, len(tokenizer), gen)
        ours.append((labels != -100).float().mean().item())
        batch = collator([{"input_ids": i, "special_tokens_mask": s} for i, s in zip(enc["input_ids"], enc["special_tokens_mask"])])
        theirs.append((batch["labels"] != -100).float().mean().item())
        assert not (batch["labels"] != -100)[special].any()
    assert abs(sum(ours) / len(ours) - sum(theirs) / len(theirs)) < 0.005


def test_whole_word_masking_masks_all_pieces_of_a_word():
    ids = torch.arange(10, 22).view(1, 12)
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 4, 5, -1]])
    special = word_ids < 0
    for seed in range(20):
        _, labels = mlm.mask_tokens(ids, special, 4, 50, torch.Generator().manual_seed(seed), mlm_probability=0.5,
                                    word_ids=word_ids)
        chosen = (labels != -100)[0]
        for w in range(6):
            pieces = chosen[word_ids[0] == w]
            assert pieces.all() or not pieces.any()
        assert not chosen[special[0]].any()


def test_gathered_head_loss_equals_the_standard_forward(tokenizer):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(mlm.TinyBertConfig(hidden=32, layers=2, heads=2, intermediate=64).bert_config(len(tokenizer))).eval()
    enc = tokenizer(TEXTS[:8], padding=True, return_special_tokens_mask=True, return_tensors="pt")
    inputs, labels = mlm.mask_tokens(enc["input_ids"], enc["special_tokens_mask"].bool(), tokenizer.mask_token_id,
                                     len(tokenizer), torch.Generator().manual_seed(0), mlm_probability=0.3)
    with torch.no_grad():
        standard = model(input_ids=inputs, attention_mask=enc["attention_mask"], labels=labels).loss
        gathered = mlm.gathered_mlm_loss(model, inputs, enc["attention_mask"], labels)
    assert torch.allclose(standard, gathered, atol=1e-5)


def test_tokenizer_round_trip_and_special_tokens(tokenizer):
    held_out = "the rabbit was tired"
    ids = tokenizer(held_out)["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == held_out
    pair = tokenizer("alice", "the queen")
    assert pair["token_type_ids"] == [0, 0, 0, 1, 1, 1]
    assert tokenizer("Zebra!")["input_ids"].count(tokenizer.unk_token_id) <= 2  # unseen word: pieces, at worst [UNK]


def test_pack_sequences(tokenizer):
    rows = mlm.pack_sequences(tokenizer, TEXTS[:20], max_len=10)
    assert rows.shape[1] == 10 and (rows[:, 0] == tokenizer.cls_token_id).all() and (rows[:, -1] == tokenizer.sep_token_id).all()
    # the bodies, read in order, are the texts' pieces in order, cut only at the end (no piece
    # lost or repeated between rows, no text reordered)
    stream = [i for text in TEXTS[:20] for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    body = rows[:, 1:-1].flatten().tolist()
    assert len(rows) == len(stream) // 8 and body == stream[: len(body)]
    assert tokenizer.decode(rows[0, 1:-1]).split()[0] == TEXTS[0].split()[0].lower()


def test_finetune_helper_learns_a_toy_task(tokenizer):
    import datasets
    from transformers import BertForSequenceClassification

    # The label is which of two names occurs; fillers and lengths vary, so length alone cannot solve it.
    rng = random.Random(0)
    fillers = "the of made some tarts was very tired white rabbit ran past with a watch down hole went".split()

    def sample(n):
        rows = [(rng.sample(fillers, rng.randint(2, 5)), rng.randint(0, 1)) for _ in range(n)]
        for words, label in rows:
            words.insert(rng.randint(0, len(words)), ["alice", "queen"][label])
        return datasets.Dataset.from_dict({"sentence": [" ".join(w) for w, _ in rows], "label": [y for _, y in rows]})

    train, test = sample(200), sample(100)
    cfg = finetune.FinetuneConfig(min_steps=40, max_steps=40, batch=16, lr=1e-2, max_len=12)
    torch.manual_seed(0)
    model = BertForSequenceClassification(mlm.TinyBertConfig(hidden=32, layers=1, heads=2, intermediate=64)
                                          .bert_config(len(tokenizer)))
    acc, losses = finetune.finetune_classifier(model, finetune.encode(tokenizer, train, ["sentence"], 12),
                                               finetune.encode(tokenizer, test, ["sentence"], 12), cfg, seed=0)
    assert acc >= 0.95 and losses[-1] < 0.5 * losses[0]


def test_length_grouped_batches_cut_padding_and_cover_the_data():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 60, (1000,), generator=g)
    grouped = finetune.length_grouped_batches(lengths, 32, 50, torch.Generator().manual_seed(1))
    plain = finetune.length_grouped_batches(lengths, 32, 50, torch.Generator().manual_seed(1), group=1)
    assert len(grouped) == len(plain) == 50 and all(len(b) == 32 for b in grouped + plain)
    assert all(((b >= 0) & (b < 1000)).all() for b in grouped)
    padded = lambda batches: sum(len(b) * lengths[b].max().item() for b in batches)  # noqa: E731
    assert padded(grouped) < 0.75 * padded(plain)
    again = finetune.length_grouped_batches(lengths, 32, 50, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(grouped, again))


def test_masking_reproduces_the_collator_exactly_when_seeded_alike(tokenizer):
    """Same rule, same order of random draws: with the same seed, the very same choices."""
    from transformers import DataCollatorForLanguageModeling

    rows = mlm.pack_sequences(tokenizer, TEXTS, max_len=16)
    special = torch.zeros_like(rows, dtype=torch.bool)
    special[:, [0, -1]] = True
    ours = mlm.mask_tokens(rows, special, tokenizer.mask_token_id, len(tokenizer), torch.Generator().manual_seed(3))
    torch.manual_seed(3)
    theirs = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)([{"input_ids": r} for r in rows])
    assert torch.equal(ours[0], theirs["input_ids"]) and torch.equal(ours[1], theirs["labels"])


def test_wordpiece_ids_are_reproducible():
    """The trainer's tie-breaking varies between processes; the renumbered vocabulary must not."""
    import subprocess
    import sys

    code = ("from tlcourse import wordpiece; import hashlib, json; texts = [' '.join(f'w{i % 97} x{i % 13}y{i % 7}' "
            "for i in range(j, j + 12)) for j in range(2000)]; v = wordpiece.train_wordpiece(texts, 300, 1).get_vocab(); "
            "print(hashlib.sha256(json.dumps(sorted(v.items())).encode()).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(3)}
    assert len(runs) == 1, runs


def test_pretrain_mlm_trains_through_train_fit_and_caches(tokenizer, tmp_path, monkeypatch):
    from tlcourse import train

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return train.fit(*args, **kwargs)

    monkeypatch.setattr(mlm, "fit", spy)
    cfg = mlm.TinyBertConfig(hidden=32, layers=1, heads=2, intermediate=64, max_len=16, steps=60, batch=16, lr=3e-3,
                             warmup=10)
    model, meta = mlm.pretrain_mlm("test-mlm", tokenizer, TEXTS, cfg, progress=False)
    assert len(calls) == 1 and calls[0]["warmup"] == 10 and calls[0]["clip_grad"] == 1.0
    assert len(meta["loss"]) == 60 and meta["rows"] == len(mlm.pack_sequences(tokenizer, TEXTS, 16))
    assert sum(meta["loss"][-10:]) < 0.7 * sum(meta["loss"][:10])  # a repetitive corpus: the loss falls fast
    again, meta_again = mlm.pretrain_mlm("test-mlm", tokenizer, TEXTS, cfg, progress=False)
    assert len(calls) == 1 and meta_again["loss"] == meta["loss"]  # loaded from the cache, not retrained
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
