"""Tests of tlcourse.data: row counts and label balances from the data README / SOURCE.md tables,
the integrity check, the error messages, and the hub fallback (with a fake hub): normalised, and
used only when it is the same data.

The shared-data tests use ``$TLCOURSE_DATA`` or ``../shared/data`` next to the repository and are
skipped when neither exists. Nothing here touches the network: every test runs with the Hugging Face
offline switches on, except the hub tests, which replace ``datasets.load_dataset`` with a fake.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from tlcourse import data
from tlcourse.data import DataCorruptError, DataFormatError, DataNotFoundError, UnknownDataError

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("TLCOURSE_DATA", "").strip()
    return Path(env) if env else REPO.parent / "shared" / "data"


SHARED = _shared_dir()
needs_data = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(),
    reason=f"shared data folder not found at {SHARED} (set TLCOURSE_DATA to the course's shared/data)",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Offline, private caches, no data bundle, and no data-dir override leaking between tests."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TLCOURSE_DATA", str(SHARED))
    # No data bundle either (a caller's TLCOURSE_DATA_URL, e.g. CI's local server, must not serve
    # the "nothing found" tests): a dead loopback port, and a private download cache.
    monkeypatch.setenv("TLCOURSE_DATA_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TLCOURSE_DATA_CACHE", str(tmp_path / "dl"))
    data.set_data_dir(None)
    yield
    data.set_data_dir(None)


def _counts(ds: datasets.Dataset, column: str = "label") -> dict:
    return dict(Counter(ds[column]))


# --- the shared data: counts from README.md / SOURCE.md ------------------------------------------

@needs_data
def test_sst2():
    dd = data.load_sst2()
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 67_349, "validation": 872}
    assert dd["train"].column_names == ["sentence", "label"]
    assert dd["train"].features["label"].names == ["negative", "positive"]
    assert dd["train"][0] == {"sentence": "hide new secretions from the parental units ", "label": 0}
    assert _counts(dd["train"]) == {1: 37_569, 0: 29_780}
    assert _counts(dd["validation"]) == {1: 444, 0: 428}


@needs_data
def test_uci_sentiment_domains():
    dd = data.load_uci_sentiment()
    assert list(dd) == ["amazon", "imdb", "yelp"]
    for domain, ds in dd.items():
        assert ds.num_rows == 1_000 and _counts(ds) == {0: 500, 1: 500}, domain
        assert ds.column_names == ["sentence", "label"]
        assert all(s == s.strip() and s for s in ds["sentence"]), domain
    imdb = data.load_uci_sentiment("imdb")
    assert imdb[0] == {"sentence": "A very, very, very slow-moving, aimless movie about a distressed, "
                                    "drifting young man.", "label": 0}
    assert any("\x85" in s for s in imdb["sentence"])  # NEL stays inside its sentence, not a line break
    assert data.load_uci_sentiment("yelp")[0] == {"sentence": "Wow... Loved this place.", "label": 1}


@needs_data
def test_ag_news():
    dd = data.load_ag_news()
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 10_001, "test": 7_600}
    assert dd["train"].features["label"].names == ["World", "Sports", "Business", "Sci/Tech"]
    names = dd["train"].features["label"].int2str
    assert {names(k): v for k, v in _counts(dd["train"]).items()} == {
        "Sci/Tech": 2_538, "World": 2_509, "Business": 2_496, "Sports": 2_458}
    assert _counts(dd["test"]) == {0: 1_900, 1: 1_900, 2: 1_900, 3: 1_900}
    assert dd["test"][0]["label"] == 2 and dd["test"][0]["text"].startswith("Unions representing workers")
    assert len(set(dd["train"]["text"]) & set(dd["test"]["text"])) == 8  # the known train/test duplicates


@needs_data
def test_rte():
    dd = data.load_rte()
    assert {k: v.num_rows for k, v in dd.items()} == {"train": 2_490, "validation": 277, "test": 3_000}
    assert dd["train"].features["label"].names == ["entailment", "not_entailment"]
    assert _counts(dd["train"]) == {0: 1_249, 1: 1_241}
    assert _counts(dd["validation"]) == {0: 146, 1: 131}
    assert _counts(dd["test"]) == {-1: 3_000}
    assert dd["train"][0] == {"idx": 0, "sentence1": "No Weapons of Mass Destruction Found in Iraq Yet.",
                              "sentence2": "Weapons of Mass Destruction Found in Iraq.", "label": 1}


@needs_data
def test_text_corpora_line_and_token_counts():
    gut = data.load_text("gutenberg")
    assert gut.num_rows == 66_372 and gut.column_names == ["text", "book"]
    assert len(set(gut["book"])) == 17 and Counter(gut["book"])["carroll-alice"] == 1_632
    assert sum(len(line.split()) for line in gut["text"]) == 1_596_862
    assert gut[0] == {"text": "[ Emma by Jane Austen 1816 ]", "book": "austen-emma"}

    wiki = data.load_text("wikitext2")
    assert {k: v.num_rows for k, v in wiki.items()} == {"validation": 3_760, "test": 4_358}
    # the README's token counts include one <eos> per line, blank lines included
    assert sum(len(t.split()) + 1 for t in wiki["validation"]["text"]) == 217_646
    assert sum(len(t.split()) + 1 for t in wiki["test"]["text"]) == 245_569
    assert wiki["validation"]["text"][:2] == [" ", " = Homarus gammarus = "]

    shakespeare = data.load_text("tinyshakespeare")
    assert shakespeare.num_rows == 40_000
    assert sum(len(t) + 1 for t in shakespeare["text"]) == 1_115_394  # characters incl. newlines
    assert shakespeare["text"][:3] == ["First Citizen:", "Before we proceed any further, hear me speak.", ""]


@needs_data
def test_pretrain_corpus_documents_and_words_match_source_md():
    corpus = data.load("pretrain_corpus")
    assert corpus.column_names == ["source", "doc", "text", "words"] and corpus.num_rows == 20_770
    docs, words = Counter(corpus["source"]), Counter()
    for source, n in zip(corpus["source"], corpus["words"]):
        words[source] += n
    assert docs == {"fiction": 180, "wikipedia": 2_659, "dialogue": 17_193, "meetings": 171, "news": 567}
    assert words == {"fiction": 9_396_568, "wikipedia": 6_274_859, "dialogue": 3_040_558,
                     "meetings": 978_226, "news": 384_866}
    assert corpus[0]["text"].startswith("[ A Garland for Girls by Louisa May Alcott ]\nA GARLAND")
    news = data.load_pretrain_corpus(["news"])
    assert news.num_rows == 567 and news[0]["doc"] == 0
    assert news[0]["text"].startswith("When you see the word Amazon")


@needs_data
def test_sample_pretrain_corpus_keeps_shares_and_nests():
    small = data.sample_pretrain_corpus(200_000, seed=3)
    large = data.sample_pretrain_corpus(600_000, seed=3)
    for sample, budget in ((small, 200_000), (large, 600_000)):
        words = Counter()
        for row in sample:
            words[row["source"]] += len(row["text"].split())
        # each source gets its share of the corpus (fiction 46.8%, ..., news 1.9%), cut at a line
        assert abs(words["fiction"] / budget - 0.468) < 0.01 and abs(words["news"] / budget - 0.019) < 0.005
        assert abs(sum(words.values()) - budget) < 0.01 * budget
    for source in data.PRETRAIN_SOURCES:  # a larger sample with the same seed extends the smaller
        a = [r["text"] for r in small if r["source"] == source]
        b = [r["text"] for r in large if r["source"] == source]
        assert a and b[: len(a)] == a
    assert data.sample_pretrain_corpus(200_000, seed=3)["text"] == small["text"]
    assert data.sample_pretrain_corpus(200_000, seed=4)["text"] != small["text"]
    news = data.sample_pretrain_corpus(None, sources=["news"])
    assert news.num_rows == 7_772 - 566 and set(news["source"]) == {"news"}


def test_pretrain_corpus_errors(monkeypatch):
    with pytest.raises(UnknownDataError, match=r"'books'.*fiction, wikipedia, dialogue, meetings, news"):
        data.load_pretrain_corpus(["books"])
    with pytest.raises(ValueError, match="positive int or None"):
        data.sample_pretrain_corpus(0)
    with pytest.raises(ValueError, match="sources is empty"):
        data.load_pretrain_corpus([])
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match="no reliable hub copy"):
        data.load_pretrain_corpus(["news"])


@needs_data
def test_analogy_sections():
    ds = data.load_analogy()
    assert ds.num_rows == 15_638 and ds.column_names == ["section", "a", "b", "c", "d"]
    assert ds[0] == {"section": "capital-common-countries", "a": "Athens", "b": "Greece", "c": "Baghdad", "d": "Iraq"}
    per_section = {name.split("-")[0] if name.startswith("gram") else name: n
                   for name, n in _counts(ds, "section").items()}
    assert per_section == {
        "capital-common-countries": 405, "capital-world": 3_619, "currency": 693, "city-in-state": 1_974,
        "family": 405, "gram1": 794, "gram2": 650, "gram3": 1_066, "gram4": 898, "gram5": 845, "gram6": 1_279,
        "gram7": 1_248, "gram8": 1_066, "gram9": 696}


@needs_data
@pytest.mark.parametrize("name, kwargs, rows, first", [
    ("wordsim353", {}, 353, ("love", "sex", 6.77)),
    ("simlex999", {}, 999, ("old", "new", 1.58)),
    ("men", {}, 3_000, ("sun", "sunlight", 50.0)),
    ("men", {"form": "lemma"}, 3_000, ("sun-n", "sunlight-n", 50.0)),
    ("men", {"split": "dev"}, 2_000, ("berry-n", "seed-n", 37.0)),
    ("men", {"split": "test"}, 1_000, ("display-n", "pond-n", 10.0)),
])
def test_word_similarity(name, kwargs, rows, first):
    ds = data.load_word_similarity(name, **kwargs)
    assert ds.num_rows == rows and ds.column_names == ["word1", "word2", "score"]
    assert (ds[0]["word1"], ds[0]["word2"], ds[0]["score"]) == first
    assert data.load(name, **kwargs).num_rows == rows


@needs_data
@pytest.mark.parametrize("treebank, sentences, words", [
    ("en_ewt", {"train": 12_544, "validation": 2_001, "test": 2_077}, {"train": 204_577, "validation": 25_147,
                                                                       "test": 25_094}),
    ("es_gsd", {"validation": 1_400, "test": 427}, {"validation": 37_154, "test": 12_002}),
    ("de_gsd", {"validation": 799, "test": 977}, {"validation": 12_480, "test": 16_499}),
    ("fr_gsd", {"validation": 1_476, "test": 416}, {"validation": 35_721, "test": 10_018}),
    ("ja_gsd", {"validation": 507, "test": 543}, {"validation": 12_287, "test": 13_034}),
    ("en_pud", {"test": 1_000}, {"test": 21_180}),
    ("de_pud", {"test": 1_000}, {"test": 21_332}),
    ("es_pud", {"test": 1_000}, {"test": 23_283}),
    ("fr_pud", {"test": 1_000}, {"test": 24_726}),
])
def test_ud_counts_match_stats_xml(treebank, sentences, words):
    dd = data.load_ud(treebank)
    assert {k: v.num_rows for k, v in dd.items()} == sentences
    # words = syntactic words: multiword ranges (1-2) and empty nodes (8.1) skipped
    assert {k: sum(map(len, v["tokens"])) for k, v in dd.items()} == words
    for ds in dd.values():
        assert ds.column_names == ["id", "text", "tokens", "upos"]
        assert all(len(t) == len(u) for t, u in zip(ds["tokens"], ds["upos"]))
        assert set().union(*map(set, ds["upos"])) <= set(data.UPOS_TAGS)


@needs_data
def test_ud_first_sentence_and_aliases():
    assert len(data.UPOS_TAGS) == 17
    dev = data.load_ud("en_ewt", "dev")
    assert dev.num_rows == data.load_ud("en_ewt", "validation").num_rows == 2_001
    assert dev[0]["tokens"] == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert dev[0]["upos"] == ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"]
    assert dev[0]["text"] == "From the AP comes this story :"
    es = data.load("ud", treebank="es_gsd", split="test")
    assert es[0]["id"] == "es-dev-003-s414" and "familia del escritor" in es[0]["text"]
    assert es[0]["tokens"][4:8] == ["familia", "de", "el", "escritor"]  # the range "del" is skipped
    assert not any("del" in tokens for tokens in es["tokens"])
    assert data.load_ud("en_pud", "test")["id"] == data.load_pud_parallel()["id"]


@needs_data
def test_pud_parallel():
    ds = data.load_pud_parallel()
    assert ds.num_rows == 1_000 and ds.column_names == ["id", "en", "de", "es", "fr"]
    assert ds[0]["id"] == "n01001011" and ds[0]["en"].startswith("“While much of the digital transition")
    assert ds["en"] == data.load_ud("en_pud", "test")["text"]


@needs_data
def test_omniglot_background_sets():
    for part, images, classes, alphabets in [("background_small1", 2_720, 136, 5),
                                             ("background_small2", 3_120, 156, 5)]:
        ds = data.load_omniglot(part)
        assert ds.num_rows == images and ds.features["label"].num_classes == classes
        assert len(set(ds["alphabet"])) == alphabets and set(ds["drawer"]) == set(range(1, 21))
        assert ds.column_names == ["image", "alphabet", "character", "drawer", "label", "path"]
    first = ds.with_format("numpy")[0]
    assert first["image"].shape == (105, 105) and first["image"].dtype == np.bool_
    assert 0.01 < first["image"].mean() < 0.3  # True = ink: a thin stroke on a white page
    assert data.load_omniglot("background_small1")[0]["path"] == \
        "images_background_small1/Balinese/character01/0108_01.png"


@needs_data
def test_omniglot_one_shot_runs():
    ds = data.load_omniglot("one_shot_runs")
    assert ds.num_rows == 800 and Counter(ds["split"]) == {"training": 400, "test": 400}
    runs, splits, labels = np.array(ds["run"]), np.array(ds["split"]), np.array(ds["label"])
    for run in range(1, 21):
        for split in ("training", "test"):
            assert sorted(labels[(runs == run) & (splits == split)]) == list(range(20))
    row = {k: v for k, v in ds[20].items() if k != "image"}  # run01/test/item01.png -> training/class08.png
    assert row == {"run": 1, "split": "test", "item": 1, "label": 7, "path": "run01/test/item01.png"}


@needs_data
def test_load_dispatch_and_copies_are_independent():
    assert {"sst2", "ud", "omniglot", "men", "gutenberg"} <= set(data.available())
    assert data.load("gutenberg").num_rows == 66_372
    first = data.load_sst2()["train"]
    first.set_format("numpy")
    second = data.load_sst2()["train"]
    assert second.format["type"] is None and second[0]["label"] == 0


# --- data directory, integrity and error messages ----------------------------------------------------

def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    data.set_data_dir(tmp_path / "override")
    assert data.data_dir() == tmp_path / "override"
    assert "missing" in data.describe_data_dir() and "HF_HUB_OFFLINE" in data.describe_data_dir()
    data.set_data_dir(None)
    monkeypatch.delenv("TLCOURSE_DATA")
    assert data.data_dir() is None and data.describe_data_dir().startswith("not set (TLCOURSE_DATA)")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("TLCOURSE_DATA_URL", "http://127.0.0.1:9/bundle/")
    monkeypatch.setenv("TLCOURSE_DATA_CACHE", str(tmp_path / "dl"))
    assert data.describe_data_dir() == (
        f"not set (TLCOURSE_DATA); downloads to {tmp_path / 'dl'} from http://127.0.0.1:9/bundle/"
    )
    assert data.cache_dir() == tmp_path / "cache"


@needs_data
def test_describe_found():
    assert data.describe_data_dir() == f"{SHARED.absolute()} (found)"


def test_missing_data_dir_offline(monkeypatch):
    monkeypatch.setenv("TLCOURSE_DATA", "/nonexistent")
    with pytest.raises(DataNotFoundError) as info:
        data.load_sst2()
    message = str(info.value)
    assert "/nonexistent" in message and "TLCOURSE_DATA" in message and "set_data_dir" in message
    assert "stanfordnlp/sst2" in message and "offline" in message
    assert isinstance(info.value, FileNotFoundError)


def test_unset_data_dir_and_no_hub_copy(monkeypatch):
    monkeypatch.delenv("TLCOURSE_DATA")
    with pytest.raises(DataNotFoundError, match=r"TLCOURSE_DATA is unset") as info:
        data.load_omniglot("one_shot_runs")
    assert "no reliable hub copy" in str(info.value)


def _copy(rel: str, root: Path) -> Path:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / rel, target)
    return target


@needs_data
def test_truncated_file_is_corrupt(tmp_path):
    _copy("sst2/dev.tsv", tmp_path)
    train = _copy("sst2/train.tsv", tmp_path)
    train.write_bytes(train.read_bytes()[:10_000])
    with pytest.raises(DataCorruptError) as info:
        data.load_sst2(data_dir=tmp_path)
    message = str(info.value)
    assert str(train) in message and "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1" in message
    assert "re-copy the file from" in message


@needs_data
def test_same_size_edit_is_corrupt(tmp_path):
    path = _copy("word_embedding_eval/wordsim353/combined.tab", tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-5] = ord("9") if raw[-5] != ord("9") else ord("8")
    path.write_bytes(bytes(raw))
    data.set_data_dir(tmp_path)
    with pytest.raises(DataCorruptError, match="combined.tab"):
        data.load("wordsim353")


def test_unchecked_file_parse_errors_name_file_and_line(tmp_path):
    # a split the shared data lacks (so no checksum): a user may add it; a malformed line is reported
    path = tmp_path / "ud_treebanks/UD_Spanish-GSD/es_gsd-ud-train.conllu"
    path.parent.mkdir(parents=True)
    good = "# sent_id = s1\n# text = del mar\n1-2\tdel\t_\t_\t_\t_\t_\t_\t_\t_\n" \
           "1\tde\tde\tADP\t_\t_\t3\tcase\t_\t_\n2\tel\tel\tDET\t_\t_\t3\tdet\t_\t_\n" \
           "3\tmar\tmar\tNOUN\t_\t_\t0\troot\t_\t_\n\n"
    path.write_text(good, encoding="utf-8")
    ds = data.load_ud("es_gsd", "train", data_dir=tmp_path)
    assert ds[0] == {"id": "s1", "text": "del mar", "tokens": ["de", "el", "mar"], "upos": ["ADP", "DET", "NOUN"]}
    path.write_text(good + "# sent_id = s2\n1\tmar\tmar\tNOUN\t_\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"es_gsd-ud-train.conllu, line 9: expected 10 tab-separated"):
        data.load_ud("es_gsd", "train", data_dir=tmp_path)
    path.write_text(good.replace("NOUN", "NOM"), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 6: unknown UPOS tag 'NOM'"):
        data.load_ud("es_gsd", "train", data_dir=tmp_path)


@needs_data
def test_split_not_available_offline():
    with pytest.raises(DataNotFoundError) as info:
        data.load_ud("es_gsd", "train")
    message = str(info.value)
    assert "es_gsd-ud-train.conllu" in message and "validation, test" in message
    assert "universal-dependencies/universal_dependencies" in message


def test_unknown_names_list_valid_ones():
    with pytest.raises(UnknownDataError, match=r"Unknown dataset 'imagenet'.*sst2"):
        data.load("imagenet")
    with pytest.raises(UnknownDataError, match=r"'bogus' for es_gsd\. Valid choices: train, validation, test"):
        data.load_ud("es_gsd", "bogus")
    with pytest.raises(UnknownDataError, match=r"Valid choices: test\."):
        data.load_ud("en_pud", "train")
    with pytest.raises(UnknownDataError, match="en_ewt"):
        data.load_ud("xx_yyy")
    with pytest.raises(UnknownDataError, match="amazon, imdb, yelp"):
        data.load_uci_sentiment("twitter")
    with pytest.raises(UnknownDataError, match="lemma"):
        data.load_word_similarity("men", split="dev", form="natural")
    with pytest.raises(UnknownDataError, match="one_shot_runs"):
        data.load_omniglot("images_evaluation")
    with pytest.raises(UnknownDataError, match="tinyshakespeare"):
        data.load_text("wikitext103")


# --- the hub fallback, with a fake load_dataset -----------------------------------------------------

HF_UPOS = ["NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ",
           "PROPN", "PRON", "X", "_", "ADV", "INTJ", "VERB", "AUX"]  # the hub's ClassLabel, "_" for ranges


def _hub_copies() -> dict[tuple, datasets.DatasetDict]:
    D, F, V, C = datasets.Dataset.from_dict, datasets.Features, datasets.Value, datasets.ClassLabel
    sst = F({"idx": V("int32"), "sentence": V("string"), "label": C(names=["negative", "positive"])})
    glue = F({"sentence1": V("string"), "sentence2": V("string"),
              "label": C(names=["entailment", "not_entailment"]), "idx": V("int32")})
    ud = F({"idx": V("string"), "text": V("string"), "tokens": datasets.List(V("string")),
            "lemmas": datasets.List(V("string")), "upos": datasets.List(C(names=HF_UPOS))})
    tags = [HF_UPOS.index(t) for t in ("VERB", "_", "ADP", "DET", "NOUN")]
    ud_split = D({"idx": ["s1"], "text": ["Vino del mar"], "tokens": [["Vino", "del", "de", "el", "mar"]],
                  "lemmas": [["venir", "_", "de", "el", "mar"]], "upos": [tags]}, features=ud)
    return {
        ("stanfordnlp/sst2", None): datasets.DatasetDict({
            "train": D({"idx": [0, 1], "sentence": ["bad ", "good "], "label": [0, 1]}, features=sst),
            "validation": D({"idx": [0], "sentence": ["fine "], "label": [1]}, features=sst),
            "test": D({"idx": [0], "sentence": ["hidden "], "label": [-1]}, features=sst)}),
        ("nyu-mll/glue", "rte"): datasets.DatasetDict({
            split: D({"sentence1": ["a"], "sentence2": ["b"], "label": [label], "idx": [7]}, features=glue)
            for split, label in (("train", 0), ("validation", 1), ("test", -1))}),
        ("fancyzhx/ag_news", None): datasets.DatasetDict({
            split: D({"text": ["Title. Body"], "label": [3]},
                     features=F({"text": V("string"), "label": C(names=["World", "Sports", "Business", "Sci/Tech"])}))
            for split in ("train", "test")}),
        ("Salesforce/wikitext", "wikitext-2-v1"): datasets.DatasetDict({
            split: D({"text": ["", " = Homarus gammarus = \n", "", " The lobster . \n"]})
            for split in ("train", "validation", "test")}),
        ("karpathy/tiny_shakespeare", None): datasets.DatasetDict({
            "train": D({"text": ["First Citizen:\nBefore we pro"]}), "validation": D({"text": ["ceed\n\nAll"]}),
            "test": D({"text": [":\nSpeak.\n"]})}),
        ("universal-dependencies/universal_dependencies", None): datasets.DatasetDict(
            {"train": ud_split, "validation": ud_split, "test": ud_split}),
    }


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Online, no data directory, and ``datasets.load_dataset`` answering from :func:`_hub_copies`."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path / "empty"))
    copies, calls = _hub_copies(), []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return copies[(path, name)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def _serve(fake_hub_calls, monkeypatch, copies: dict) -> None:
    def load_dataset(path, name=None, **kwargs):
        fake_hub_calls.append((path, name, kwargs))
        return copies[(path, name)]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)


@needs_data  # builds hub-shaped copies of the shared data
def test_hub_copy_used_only_when_it_is_the_same_data(fake_hub, monkeypatch, tmp_path):
    """A hub copy that loads to the course's rows is used (columns normalised); one that differs
    in a row or in its counts is refused, and AG News / UD have no hub fallback at all."""
    local_sst, local_rte = data.load_sst2(data_dir=SHARED), data.load_rte(data_dir=SHARED)
    sst_features = datasets.Features({"idx": datasets.Value("int32"), **local_sst["train"].features})
    hub_sst = datasets.DatasetDict(
        {split: ds.add_column("idx", list(range(len(ds)))).cast(sst_features)
         for split, ds in local_sst.items()}
    )
    hub_rte = datasets.DatasetDict(
        {split: ds.select_columns(["sentence1", "sentence2", "label", "idx"])
         for split, ds in local_rte.items()}
    )
    copies = _hub_copies()
    copies[("stanfordnlp/sst2", None)] = hub_sst
    copies[("nyu-mll/glue", "rte")] = hub_rte
    _serve(fake_hub, monkeypatch, copies)
    sst, rte = data.load_sst2(), data.load_rte()
    for hub, local in ((sst, local_sst), (rte, local_rte)):
        assert list(hub) == list(local)
        for split in hub:
            assert hub[split].features == local[split].features
            assert hub[split].data.table.equals(local[split].data.table), split
    assert all(kwargs["cache_dir"].startswith(str(tmp_path / "cache")) for _, _, kwargs in fake_hub)

    drifted = hub_sst["validation"].map(lambda row, i: {"sentence": row["sentence"] + ("!" if i == 5 else "")},
                                        with_indices=True)
    copies[("stanfordnlp/sst2", None)] = datasets.DatasetDict({**hub_sst, "validation": drifted})
    with pytest.raises(DataNotFoundError, match=r"stanfordnlp/sst2 is not the course's data \(its content"):
        data.load_sst2()
    copies[("nyu-mll/glue", "rte")] = _hub_copies()[("nyu-mll/glue", "rte")]  # 1 row per split
    with pytest.raises(DataNotFoundError, match=r"\{'train': 1, 'validation': 1, 'test': 1\} rows"):
        data.load_rte()
    calls = len(fake_hub)
    with pytest.raises(DataNotFoundError, match="fancyzhx/ag_news is other data"):
        data.load_ag_news()
    with pytest.raises(DataNotFoundError, match="older UD release"):
        data.load_ud("es_gsd", "train")
    assert len(fake_hub) == calls  # not even asked


@needs_data  # builds hub-shaped copies of the shared data
def test_hub_line_corpora_are_normalised(fake_hub, monkeypatch):
    local_wiki = data.load_text("wikitext2", data_dir=SHARED)
    local_shake = data.load_text("tinyshakespeare", data_dir=SHARED)
    copies = _hub_copies()
    # the hub's WikiText rows end in a newline and its blank rows are "" (the local file has " ")
    copies[("Salesforce/wikitext", "wikitext-2-v1")] = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({"text": ["" if t == " " else t + "\n" for t in ds["text"]]})
         for split, ds in {"train": local_wiki["test"], **local_wiki}.items()}
    )
    text = "\n".join(local_shake["text"]) + "\n"  # the hub: one string per split, cut anywhere
    copies[("karpathy/tiny_shakespeare", None)] = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({"text": [text[a:b]]})
         for split, a, b in (("train", 0, 1000), ("validation", 1000, 5003), ("test", 5003, None))}
    )
    _serve(fake_hub, monkeypatch, copies)
    wiki = data.load_text("wikitext2")
    assert list(wiki) == ["validation", "test"]
    assert all(wiki[s].data.table.equals(local_wiki[s].data.table) for s in wiki)
    assert data.load_text("tinyshakespeare").data.table.equals(local_shake.data.table)
    copies[("karpathy/tiny_shakespeare", None)] = _hub_copies()[("karpathy/tiny_shakespeare", None)]
    with pytest.raises(DataNotFoundError, match="karpathy/tiny_shakespeare is not the course's data"):
        data.load_text("tinyshakespeare")


def test_hub_skipped_offline_and_failure_reported(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    with pytest.raises(DataNotFoundError, match=r"not tried, offline mode is on \(HF_DATASETS_OFFLINE=true\)"):
        data.load_sst2()
    assert fake_hub == []
    monkeypatch.delenv("HF_DATASETS_OFFLINE")

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataNotFoundError, match=r"nyu-mll/glue \(config rte\) is unreachable") as info:
        data.load_rte()
    assert isinstance(info.value.__cause__, ConnectionError) and "TLCOURSE_DATA" in str(info.value)


@needs_data
def test_hub_file_mirror_is_checksummed(fake_hub, monkeypatch, tmp_path):
    """The UCI sentences come from a raw-file mirror: downloaded files pass the same sha256 check."""
    import huggingface_hub

    served = tmp_path / "mirror"
    served.mkdir()
    asked = []

    def hf_hub_download(repo_id, filename, repo_type=None, revision=None, cache_dir=None):
        asked.append((repo_id, filename, repo_type))
        assert cache_dir.startswith(str(tmp_path / "cache"))
        target = served / filename
        if not target.exists():
            shutil.copyfile(SHARED / "sentiment_labelled_sentences" / filename, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    yelp = data.load_uci_sentiment("yelp")
    assert len(yelp) == 1000 and yelp[0] == {"sentence": "Wow... Loved this place.", "label": 1}
    assert asked == [("IsaacDev/sentiment-labelled-sentences", "yelp_labelled.txt", "dataset")]
    (served / "amazon_cells_labelled.txt").write_text("Great phone.\t1\n")  # a mirror that drifted
    with pytest.raises(DataCorruptError, match="amazon_cells_labelled.txt"):
        data.load_uci_sentiment("amazon")


@needs_data
def test_hub_fingerprints_are_the_shared_data():
    """Each hub copy's expected rows and content digest are those of the shared data as loaded, and
    every hub fallback has one (or is a sha256-checked file mirror)."""
    from tlcourse.data import text
    from tlcourse.data._hub import content_digest, row_counts

    for hub, ds in ((text.SST2_HUB, data.load_sst2()), (text.RTE_HUB, data.load_rte()),
                    (text.WIKITEXT2_HUB, data.load_text("wikitext2")),
                    (text.TINYSHAKESPEARE_HUB, data.load_text("tinyshakespeare"))):
        assert dict(hub.rows) == row_counts(ds) and hub.digest == content_digest(ds), hub.repo
    for entry in data.REGISTRY.values():
        assert entry.hub.repo is None or entry.hub.digest or entry.hub.files, entry.name


def test_readme_lists_every_dataset_and_model_with_its_licence():
    """README.md's licence tables are the registries' (a dataset added without its licence row, or
    a licence changed in one place only, fails here)."""
    from pathlib import Path

    from tlcourse.data import REGISTRY
    from tlcourse.hub import MODELS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    licences = readme[readme.index("## Licence"):]
    rows = {line.split("|")[1].strip(): line for line in licences.splitlines() if line.startswith("| `")}
    for name, entry in REGISTRY.items():
        assert f"`{name}`" in rows, f"README.md's licence table has no row for the dataset {name}"
        assert rows[f"`{name}`"].rstrip(" |").endswith(entry.licence), rows[f"`{name}`"]
    for name, spec in MODELS.items():
        assert f"`{name}`" in rows, f"README.md's licence table has no row for the model {name}"
        assert rows[f"`{name}`"].rstrip(" |").endswith(spec.licence), rows[f"`{name}`"]
    assert "MIT" in licences and (Path(__file__).resolve().parents[1] / "LICENSE").read_text().startswith("MIT")
