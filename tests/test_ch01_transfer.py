"""Chapter 1: the label-budget samplers (tlcourse.data), the divergence and the model (tlcourse.bow), the
protocol and the curves (tlcourse.chapters.ch01_transfer, tlcourse.viz.summarize)."""
import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from tlcourse import bow, data, viz
from tlcourse.chapters import ch01_transfer as ch
from tlcourse.text import Vocab


def test_label_budgets_are_nested_balanced_and_seeded():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    out = data.label_budget_indices(labels, [3, 12, 30, 50], seed=4)
    assert {b: len(v) for b, v in out.items()} == {3: 3, 12: 12, 30: 30, 50: 50}
    for small, big in [(3, 12), (12, 30), (30, 50)]:
        assert set(out[small]) <= set(out[big])
    assert np.bincount(labels[out[12]]).tolist() == [4, 4, 4]
    assert np.bincount(labels[out[50]]).tolist() == [20, 20, 10]  # class 2 ran out at 10
    again = data.label_budget_indices(labels, [3, 12, 30, 50], seed=4)
    assert all(np.array_equal(out[b], again[b]) for b in out)
    other = data.label_budget_indices(labels, [30], seed=5)
    assert not np.array_equal(np.sort(out[30]), np.sort(other[30]))
    with pytest.raises(ValueError, match="must lie in 1..100"):
        data.label_budget_indices(labels, [0, 101], seed=0)


def test_budget_subset_is_the_balanced_prefix_in_dataset_order():
    import datasets

    ds = datasets.Dataset.from_dict({"text": [str(i) for i in range(90)], "label": [0] * 60 + [1] * 30})
    sub = data.budget_subset(ds, 20, seed=3)
    rows = [int(t) for t in sub["text"]]
    assert rows == sorted(rows) and sorted(rows) == sorted(data.label_budget_indices(ds["label"], [20], 3)[20].tolist())
    assert sub["label"].count(0) == sub["label"].count(1) == 10


def test_stratified_split():
    labels = np.array([0, 1] * 500)
    test, rest = data.stratified_split(labels, 400, seed=0)
    assert len(test) == 400 and len(rest) == 600 and not set(test) & set(rest)
    assert np.bincount(labels[test]).tolist() == [200, 200]


def test_js_divergence_against_scipy_and_its_bounds():
    a = [["good", "phone"], ["bad", "battery", "good"]]
    b = [["good", "film"], ["bad", "plot", "plot"]]
    words = sorted({w for t in a + b for w in t})
    p = np.array([sum(t.count(w) for t in a) for w in words], float)
    q = np.array([sum(t.count(w) for t in b) for w in words], float)
    expected = jensenshannon(p / p.sum(), q / q.sum(), base=2) ** 2  # scipy returns the square root
    assert bow.unigram_js_divergence(a, b) == pytest.approx(expected, rel=1e-12)
    assert bow.unigram_js_divergence(b, a) == pytest.approx(expected, rel=1e-12)
    assert bow.unigram_js_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert bow.unigram_js_divergence([["x"]], [["y", "z"]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no tokens"):
        bow.unigram_js_divergence([[]], a)


def test_bag_of_words_ignores_padding():
    torch.manual_seed(0)
    model = bow.BagOfWords(vocab_size=6, pad_id=5, n_classes=2, dim=4, hidden=3)
    ids = torch.tensor([[1, 2, 5, 5], [3, 5, 5, 5]])
    emb = model.embed.weight
    expected = torch.stack([(emb[1] + emb[2]) / 2, emb[3]])
    assert torch.allclose(model.embed(ids), expected, atol=1e-6)
    assert model(ids).shape == (2, 2)
    assert 0 < bow.parameter_share(model) < 1


def _toy_setting(n=120):
    """Two-word sentiment: word 1 positive, word 2 negative, plus noise words."""
    g = np.random.default_rng(0)
    y = np.array([0, 1] * (n // 2))
    x = torch.full((n, 4), 7, dtype=torch.long)
    for i, label in enumerate(y):
        x[i, 0] = 1 if label else 2
        x[i, 1] = int(g.integers(3, 7))
    vocab = Vocab(["<unk>", "good", "bad", "n1", "n2", "n3", "n4", "<pad>"])
    task = ch.Task("toy", x, torch.tensor(y), 2, [], [])
    test, pool = data.stratified_split(y, 40)
    return ch.Setting(vocab, {"src": task}, task, test, pool)


def test_transfer_model_copies_body_and_freezing_keeps_it():
    cfg = dataclasses.replace(ch.CONFIGS["cpu"], dim=8, hidden=8, finetune_steps=20)
    setting = _toy_setting()
    torch.manual_seed(0)
    source = bow.BagOfWords(len(setting.vocab), setting.vocab.pad_id, 2, 8, 8)
    frozen = bow.transfer_model(source, 3, setting.vocab, cfg.dim, cfg.hidden, freeze=True)
    assert torch.equal(frozen.embed.weight, source.embed.weight) and frozen.head.out_features == 3
    assert not any(p.requires_grad for p in frozen.body_parameters()) and frozen.head.weight.requires_grad
    frozen = bow.transfer_model(source, 2, setting.vocab, cfg.dim, cfg.hidden, freeze=True)
    before = frozen.embed.weight.detach().clone()
    t = setting.target
    tr, te = setting.pool_idx[:20], setting.test_idx
    bow.finetune_eval(frozen, (t.x[tr], t.y[tr]), (t.x[te], t.y[te]), steps=20, batch_size=8, lr=0.01, seed=0)
    assert torch.equal(frozen.embed.weight, before)
    tuned = bow.transfer_model(source, 2, setting.vocab, cfg.dim, cfg.hidden)
    bow.finetune_eval(tuned, (t.x[tr], t.y[tr]), (t.x[te], t.y[te]), steps=20, batch_size=8, lr=0.01, seed=0)
    assert not torch.equal(tuned.embed.weight, source.embed.weight)
    with pytest.raises(ValueError, match="freeze=True needs a source"):
        bow.transfer_model(None, 2, setting.vocab, cfg.dim, cfg.hidden, freeze=True)


def test_learning_curves_records_and_determinism():
    cfg = dataclasses.replace(ch.CONFIGS["cpu"], dim=8, hidden=8, budgets=(4, 20), seeds=2,
                              finetune_steps=30, finetune_lr=0.05)
    setting = _toy_setting()
    torch.manual_seed(1)
    source = bow.BagOfWords(len(setting.vocab), setting.vocab.pad_id, 2, 8, 8)
    conditions = [("scratch", None, False), ("src, frozen", "src", True)]
    feats = {"oracle": torch.nn.functional.one_hot(setting.target.y, 2).float()}
    run1 = ch.learning_curves(setting, {"src": source}, cfg, conditions, features=feats, progress=False)
    run2 = ch.learning_curves(setting, {"src": source}, cfg, conditions, features=feats, progress=False)
    assert run1 == run2 and len(run1) == 2 * 2 * 3
    assert set(run1[0]) == {"condition", "budget", "seed", "accuracy"}
    curves = viz.summarize(run1)
    assert list(curves) == ["scratch", "src, frozen", "oracle"]
    assert curves["oracle"][0].tolist() == [1.0, 1.0]  # the label itself as a feature: perfect
    assert curves["scratch"][0][-1] > 0.9  # 20 labels of a two-word task are enough from scratch


def test_keep_head_source_accuracy_and_paired_tables():
    cfg = dataclasses.replace(ch.CONFIGS["cpu"], dim=8, hidden=8, budgets=(4, 20), seeds=3,
                              finetune_steps=30, finetune_lr=0.05)
    setting = _toy_setting()
    setting.source_tests = {"src": setting.target}  # held-out rows of the source task
    torch.manual_seed(1)
    source = bow.BagOfWords(len(setting.vocab), setting.vocab.pad_id, 2, 8, 8)
    before = ch.source_accuracy(source, setting, "src")
    conditions = [("scratch", None, False), ("new head", "src", False), ("kept", "src", False, True),
                  ("frozen", "src", True), ("frozen, kept", "src", True, True)]
    records = ch.learning_curves(setting, {"src": source}, cfg, conditions, progress=False)
    assert [("source_accuracy" in r) for r in records[:5]] == [False, True, True, True, True]
    # A frozen body under the source head put back is the source model itself: nothing forgotten.
    assert (ch.seed_table(records, "frozen", key="source_accuracy") == before).all()
    # Keeping the head and freezing the body: only the source head trains, so it starts from the
    # source model (same target accuracy before training as the source model).
    model = ch._target_model(setting, {"src": source}, cfg, "src", True, True)
    assert torch.equal(model.head.weight, source.head.weight)
    assert ch.target_accuracy(model, setting) == ch.zero_shot_accuracy(source, setting)
    # seed_table pairs runs by seed: rows are seeds, columns budgets in increasing order.
    table = ch.seed_table(records, "kept")
    assert table.shape == (3, 2)
    assert table[2, 1] == next(r["accuracy"] for r in records
                               if r["condition"] == "kept" and r["seed"] == 2 and r["budget"] == 20)
    mean, se = ch.mean_se(np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]]))
    assert mean.tolist() == [3.0, 2.0] and se == pytest.approx([2 / np.sqrt(3), 0.0])
    with pytest.raises(ValueError, match="keeping the head needs a source"):
        ch._target_model(setting, {"src": source}, cfg, None, False, True)
    four = bow.BagOfWords(len(setting.vocab), setting.vocab.pad_id, 4, 8, 8)
    with pytest.raises(ValueError, match="target's 2 labels"):
        ch._target_model(setting, {"src": four}, cfg, "src", False, True)


def test_budget_rows_are_the_learning_curve_rows():
    setting = _toy_setting()
    pool_labels = setting.target.y.numpy()[setting.pool_idx]
    subsets = data.label_budget_indices(pool_labels, (4, 20, 60), seed=3)
    for budget in (4, 20, 60):
        assert np.array_equal(ch.budget_rows(setting, budget, 3), setting.pool_idx[subsets[budget]])


def test_pretrain_source_learns_the_source_task_and_reloads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    cfg = dataclasses.replace(ch.CONFIGS["cpu"], dim=8, hidden=8, pretrain_steps=60, pretrain_batch=16,
                              pretrain_lr=0.05)
    setting = _toy_setting()
    model = ch.pretrain_source(setting, "src", cfg, progress=False)
    assert not model.training and model.head.out_features == 2
    task = setting.sources["src"]
    with torch.no_grad():
        accuracy = (model(task.x).argmax(-1) == task.y).float().mean().item()
    assert accuracy > 0.95, accuracy  # the two-word task is learned
    again = ch.pretrain_source(setting, "src", cfg, progress=False)  # from the artefact cache
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))
    # fine-tuning settings are not part of the source model: changing them reuses it
    other = ch.pretrain_source(setting, "src", dataclasses.replace(cfg, finetune_lr=0.5), progress=False)
    assert torch.equal(other.embed.weight, model.embed.weight)
    assert list(tmp_path.joinpath("artifacts").iterdir()) and len(list(tmp_path.joinpath("artifacts").iterdir())) == 1
