"""Chapter 8: the distillation loss against its definition and Hinton et al.'s gradient formulas; the
students' initialisation; the training loop on a toy model."""
import dataclasses

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForSequenceClassification

from tlcourse import distill
from tlcourse.finetune import FinetuneConfig
from tlcourse.train import seeded


def _logits(seed, n=6, c=4, spread=3.0):
    return spread * torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_alpha_zero_is_cross_entropy_and_alpha_one_vanishes_at_the_teacher():
    s, t, y = _logits(0), _logits(1), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(distill.distillation_loss(s, t, y, alpha=0.0, tau=3.0), F.cross_entropy(s, y))
    assert distill.distillation_loss(t, t, y, alpha=1.0, tau=2.0).abs() < 1e-12
    assert distill.distillation_loss(t, t, None, alpha=1.0, tau=5.0).abs() < 1e-12
    assert distill.distillation_loss(s, t, None, alpha=1.0, tau=2.0) > 0.01


def test_loss_is_the_weighted_sum_of_its_terms():
    s, t, y, tau, alpha = _logits(2), _logits(3), torch.tensor([3, 2, 1, 0, 0, 0]), 4.0, 0.3
    p_t = F.softmax(t / tau, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / tau, -1))).sum(-1).mean()
    expected = (1 - alpha) * F.cross_entropy(s, y) + alpha * tau ** 2 * kl
    torch.testing.assert_close(distill.distillation_loss(s, t, y, alpha, tau), expected)
    torch.testing.assert_close(distill.distillation_loss(s, t, y, alpha, tau, scale=False),
                               (1 - alpha) * F.cross_entropy(s, y) + alpha * kl)


@pytest.mark.parametrize("tau, scale", [(1.0, True), (2.0, False), (4.0, True), (8.0, False)])
def test_soft_gradient_is_the_difference_of_softened_probabilities(tau, scale):
    s, t = _logits(4).requires_grad_(True), _logits(5)
    distill.distillation_loss(s, t, None, alpha=1.0, tau=tau, scale=scale).backward()
    expected = (F.softmax(s.detach() / tau, -1) - F.softmax(t / tau, -1)) / tau / len(s)   # batchmean
    torch.testing.assert_close(s.grad, expected * (tau ** 2 if scale else 1.0))


def test_high_temperature_approaches_logit_matching():
    """Hinton et al. section 2.1: for zero-mean logits and tau >> |z|, the scaled gradient is (z_S - z_T) / C."""
    s, t = _logits(6, spread=1.0), _logits(7, spread=1.0)
    s, t = (s - s.mean(-1, keepdim=True)).requires_grad_(True), t - t.mean(-1, keepdim=True)
    errors = []
    for tau in [2.0, 20.0, 200.0]:
        s.grad = None
        distill.distillation_loss(s, t, None, alpha=1.0, tau=tau).backward()
        matching = (s.detach() - t) / s.shape[-1] / len(s)
        errors.append(((s.grad - matching).abs().max() / matching.abs().max()).item())
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5 and errors[2] < 5e-3, errors   # O(1 / tau)


def test_bad_arguments_are_explained():
    s, t = _logits(0), _logits(1)
    with pytest.raises(ValueError, match="pass alpha=1"):
        distill.distillation_loss(s, t, None, alpha=0.5)
    with pytest.raises(ValueError, match="same shape"):
        distill.distillation_loss(s, t[:, :2])
    with pytest.raises(ValueError, match="tau > 0"):
        distill.distillation_loss(s, t, None, alpha=1.0, tau=0.0)


def _tiny_bert(layers=4, hidden=32, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=4 * hidden, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config).eval()


def test_layer_subset_student_copies_the_chosen_layers():
    teacher = _tiny_bert(layers=4)
    student = distill.layer_subset_student(teacher, keep=(0, 2)).eval()
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for i, j in [(0, 0), (1, 2)]:
        for name, value in student.bert.encoder.layer[i].state_dict().items():
            assert torch.equal(value, teacher.bert.encoder.layer[j].state_dict()[name]), (i, j, name)
    for name in s_state:
        if ".encoder.layer." not in name:
            assert torch.equal(s_state[name], t_state[name]), name
    # keeping every layer gives the teacher's function back
    same = distill.layer_subset_student(teacher, keep=(0, 1, 2, 3)).eval()
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(same(input_ids=ids).logits, teacher(input_ids=ids).logits)
    with pytest.raises(ValueError, match="distinct layer indices in 0..3"):
        distill.layer_subset_student(teacher, keep=(0, 4))


def test_narrow_student_has_the_requested_shape():
    student = distill.narrow_student(_tiny_bert(), hidden=16, layers=1, heads=2)
    assert student.config.hidden_size == 16 and student.config.num_hidden_layers == 1
    assert student.config.intermediate_size == 64 and student.config.vocab_size == 50
    with pytest.raises(ValueError, match="multiple of heads"):
        distill.narrow_student(_tiny_bert(), hidden=30, layers=1, heads=4)
    # a fresh, seeded initialisation of the teacher's class and labels, sharing no weights
    teacher = _tiny_bert()
    a, b = (distill.narrow_student(teacher, hidden=16, layers=1, heads=2, seed=s) for s in (0, 0))
    c = distill.narrow_student(teacher, hidden=16, layers=1, heads=2, seed=1)
    assert type(a) is type(teacher) and a.config.num_labels == teacher.config.num_labels
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.bert.embeddings.word_embeddings.weight, c.bert.embeddings.word_embeddings.weight)
    expected = sum(p.numel() for p in BertForSequenceClassification(a.config).parameters())
    assert sum(p.numel() for p in a.parameters()) == expected < sum(p.numel() for p in teacher.parameters())


def test_deployment_table_shares_are_against_the_first_model():
    from tlcourse.chapters import ch08_distill as ch

    teacher, data = _tiny_bert(), _toy_data()
    student = distill.narrow_student(teacher, hidden=16, layers=1, heads=2)
    table = ch.deployment_table({"teacher": (teacher, data), "student": (student, data)}, batch=16)
    assert list(table.index) == ["teacher", "student"]
    assert table.loc["teacher", ["params share", "speed-up", "accuracy share"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc["student", "params share"] == pytest.approx(
        sum(p.numel() for p in student.parameters()) / sum(p.numel() for p in teacher.parameters()), rel=0.05)
    from tlcourse.finetune import evaluate
    assert table.loc["student", "accuracy"] == evaluate(student, data)
    assert (table["rows/s"] > 0).all()


def _toy_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (n, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[: n // 2, 6:] = 0
    labels = (ids[:, 0] > 27).long()
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}


def test_logits_of_keeps_row_order_despite_length_sorting():
    model, data = _tiny_bert(), _toy_data()
    got = distill.logits_of(model, data, batch=16)
    with torch.no_grad():
        expected = torch.cat([model(**{k: data[k][i:i + 1, : int(data["attention_mask"][i].sum())]
                                       for k in ("input_ids", "attention_mask", "token_type_ids")}).logits
                              for i in range(len(data["labels"]))])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_distil_learns_the_teachers_function_without_labels():
    teacher, data = _tiny_bert(seed=1), _toy_data(n=128)
    data[distill.TEACHER] = distill.logits_of(teacher, data)
    unlabelled = {k: v for k, v in data.items() if k != "labels"}
    agreement = {k: v for k, v in data.items()}
    agreement["labels"] = data[distill.TEACHER].argmax(-1)          # accuracy = agreement with the teacher
    cfg = FinetuneConfig(epochs=20, min_steps=10, max_steps=200, batch=16, lr=3e-3)
    student = distill.narrow_student(teacher, hidden=16, layers=1, heads=2)
    before = distill.logits_of(student, data).argmax(-1).eq(agreement["labels"]).float().mean().item()
    accuracy, losses = distill.distil(student, unlabelled, agreement, cfg, alpha=1.0, tau=2.0)
    assert losses[-1] < losses[0] and accuracy > max(before, 0.8), (before, accuracy)
    with pytest.raises(ValueError, match="no labels"):
        distill.distil(student, unlabelled, agreement, cfg, alpha=0.5, tau=2.0)
    with pytest.raises(ValueError, match="no 'teacher_logits' column"):
        distill.distil(student, {k: v for k, v in data.items() if k != distill.TEACHER}, agreement, cfg, alpha=0.5, tau=2.0)


def test_hidden_cosine_loss_is_one_minus_cosine_over_the_real_tokens():
    g = torch.Generator().manual_seed(0)
    h_s, h_t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    real = [(0, 0), (0, 1), (1, 0)]
    expected = sum(1 - F.cosine_similarity(h_s[i, j], h_t[i, j], dim=0) for i, j in real) / 3
    torch.testing.assert_close(distill.hidden_cosine_loss(h_s, h_t, mask), expected)
    moved = h_s.clone()
    moved[mask == 0] = 100.0                                   # padding does not count
    torch.testing.assert_close(distill.hidden_cosine_loss(moved, h_t, mask), expected)
    assert distill.hidden_cosine_loss(3 * h_t, h_t, mask).abs() < 1e-6   # direction only, not length
    with pytest.raises(ValueError, match="same shape"):
        distill.hidden_cosine_loss(h_s[:, :, :4], h_t, mask)


def test_distil_with_the_cosine_loss_pulls_the_students_states_to_the_teachers():
    from tlcourse.distill import _encoder

    teacher, data = _tiny_bert(layers=4, seed=1), _toy_data(n=64)
    data[distill.TEACHER] = distill.logits_of(teacher, data)
    cfg = FinetuneConfig(epochs=10, min_steps=10, max_steps=40, batch=16, lr=3e-3)
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}

    def states(model):
        with torch.no_grad():
            return _encoder(model.eval())(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).last_hidden_state

    def gap(student):
        return distill.hidden_cosine_loss(states(student), states(teacher), data["attention_mask"]).item()

    runs = {}
    for cosine in (0.0, 5.0):
        student = distill.layer_subset_student(_tiny_bert(layers=4, seed=2), keep=(0, 2))  # not the teacher's
        before = gap(student)
        with seeded(0):  # the same dropout in both runs
            _, losses = distill.distil(student, data, data, cfg, alpha=0.5, tau=2.0, teacher=teacher, cosine=cosine)
        runs[cosine] = (before, gap(student), losses)
        assert not _encoder(student)._forward_hooks                  # the hook is gone after training
    assert runs[0.0][0] == runs[5.0][0] > 0.5                      # the same start; the first loss adds the gap
    assert runs[5.0][2][0] > runs[0.0][2][0] + 2 * runs[0.0][0], runs
    assert runs[5.0][1] < 0.5 * runs[5.0][0] and runs[5.0][1] < runs[0.0][1], runs
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in frozen.items())   # the teacher is not trained
    with pytest.raises(ValueError, match="pass teacher="):
        distill.distil(student, data, data, cfg, alpha=0.5, tau=2.0, cosine=1.0)


def test_trimmed_vocabulary_computes_the_same_function_on_kept_pieces():
    model, data = _tiny_bert(), _toy_data(n=16)
    ids = data["input_ids"]
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=data["attention_mask"]).logits
    keep = torch.unique(ids)
    trimmed, id_map = distill.trim_vocabulary(model, keep, unk_id=1)
    assert trimmed.bert.embeddings.word_embeddings.num_embeddings == len(keep) + 1          # + [UNK]
    with torch.no_grad():
        after = trimmed(**{k: v for k, v in distill.remap(data, id_map).items() if k in ("input_ids", "attention_mask")}).logits
    torch.testing.assert_close(after, before)
    dropped = [i for i in range(50) if i not in set(keep.tolist()) and i != 1]
    assert (id_map[dropped] == id_map[1]).all() and id_map[keep].tolist() != [id_map[1].item()] * len(keep)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        distill.trim_vocabulary(_tiny_bert(), torch.tensor([3, 60]), unk_id=1)


# --- chapter 8's experiment protocol (tlcourse.chapters.ch08_distill) on a tiny teacher ---------

def _chapter_cfg(**kw):
    from tlcourse.chapters import ch08_distill as ch

    bag = FinetuneConfig(epochs=30, min_steps=10, max_steps=300, batch=16, lr=1e-2)
    return ch.DistillChapterConfig(bag_dim=16, bag=bag, **kw)


def test_teacher_answers_and_with_text_build_the_students_training_sets():
    from tlcourse.chapters import ch08_distill as ch

    teacher, data, other = _tiny_bert(seed=1), _toy_data(n=32), _toy_data(n=16, seed=1)
    for split in (data, other):
        split[distill.TEACHER] = distill.logits_of(teacher, split)
    answers = ch.teacher_answers(data)
    assert torch.equal(answers["labels"], data[distill.TEACHER].argmax(-1))
    assert torch.equal(data["labels"], _toy_data(n=32)["labels"])          # the split itself is untouched
    both = ch.with_text({"a": data, "b": other}, ("a", "b"))
    assert "labels" not in both and len(both["input_ids"]) == 48
    assert torch.equal(both[distill.TEACHER][32:], other[distill.TEACHER])
    assert ch.agreement(teacher, data) == 1.0                             # the teacher agrees with itself


def test_same_steps_matches_the_step_count_on_more_text():
    from tlcourse.chapters import ch08_distill as ch

    run = FinetuneConfig(epochs=2.0, min_steps=10, max_steps=10_000, batch=32)
    matched = ch.same_steps(run, 2000, 6000)
    assert matched.steps(6000) == run.steps(2000) == 125 and matched.epochs == pytest.approx(2 / 3, rel=0.01)
    assert ch.same_steps(run, 4000, 10_001).steps(10_001) == run.steps(4000)   # no step lost to rounding


def test_student_runs_pairs_seeds_across_conditions_and_learns_from_the_teacher():
    from tlcourse.chapters import ch08_distill as ch

    teacher, data = _tiny_bert(seed=1), _toy_data(n=128)
    # a teacher a bag of pieces can follow: its score is the share of low ids in the row
    low = ((data["input_ids"] < 20) & (data["attention_mask"] == 1)).sum(1) / data["attention_mask"].sum(1)
    score = 8 * (low - low.median())
    data[distill.TEACHER] = torch.stack([score, -score], 1)
    test = {k: v.clone() for k, v in data.items()}
    cfg = _chapter_cfg(seeds=2)
    conditions = {
        "labels": (data, 0.0, cfg.bag),
        "teacher": (ch.with_text({"d": data}, ("d",)), 1.0, cfg.bag),
        "no steps": (data, 0.0, dataclasses.replace(cfg.bag, epochs=0.0, min_steps=1)),
    }
    runs, kept = ch.student_runs(cfg, teacher, conditions, ch.teacher_answers(test), progress=False)
    assert len(runs) == 6 and sorted(runs.seed.unique()) == [0, 1]
    assert set(kept) == set(conditions) and runs.accuracy.between(0, 1).all()
    assert runs.set_index(["condition", "seed"]).steps.loc["no steps"].eq(1).all()
    # trained on the teacher's predictions, the student agrees with the teacher far more than
    # after one step
    by = runs.groupby("condition").agreement.mean()
    assert by["teacher"] > by["no steps"] + 0.2, by
    assert isinstance(kept["teacher"], distill.PieceBag)
    again, _ = ch.student_runs(cfg, teacher, conditions, ch.teacher_answers(test), progress=False)
    pd.testing.assert_frame_equal(runs.drop(columns="seconds"), again.drop(columns="seconds"))
    effects = ch.paired_effects(runs, [("teacher", "no steps")])
    wide = runs.pivot(index="seed", columns="condition", values="accuracy")
    assert effects.loc["teacher - no steps", "difference"] == pytest.approx((wide["teacher"] - wide["no steps"]).mean())


def test_piece_bag_ignores_padding_and_matches_its_bag_of_words():
    teacher, data = _tiny_bert(), _toy_data(n=8)
    bag = distill.bag_student(teacher, dim=8, seed=3)
    again = distill.bag_student(teacher, dim=8, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(bag.state_dict().values(), again.state_dict().values()))
    assert bag.bag.head.out_features == teacher.config.num_labels
    short = {k: v[:, :6] for k, v in data.items() if k in ("input_ids", "attention_mask")}
    padded = {**short, "input_ids": torch.cat([short["input_ids"], torch.full((8, 3), 7)], 1),
              "attention_mask": torch.cat([short["attention_mask"], torch.zeros(8, 3, dtype=torch.long)], 1)}
    with torch.no_grad():
        # tokens under a zero mask do not count, whatever their ids
        torch.testing.assert_close(bag(**padded).logits, bag(**short).logits)
        ids = short["input_ids"][:1]
        manual = bag.bag.head(F.relu(bag.bag.hidden(bag.bag.embed.weight[ids[0]].mean(0, keepdim=True))))
        torch.testing.assert_close(bag(input_ids=ids, attention_mask=torch.ones_like(ids)).logits, manual)


def test_piece_bag_with_kept_pieces_shares_one_row_for_the_others():
    teacher = _tiny_bert()
    keep = torch.tensor([5, 9, 12])
    bag = distill.bag_student(teacher, dim=8, seed=0, keep=keep)
    assert bag.bag.embed.num_embeddings == 5                                # 3 pieces + [PAD] + one shared row
    ids = torch.tensor([[5, 9, 30, 0], [12, 41, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        rows = bag.id_map[ids]
        assert rows[0, 2] == rows[1, 1] == 4 and len(set(rows[0, :2].tolist() + [int(rows[1, 0])])) == 3
        # 30 and 41 are both outside the kept pieces: the same row, so swapping them changes nothing
        swapped = ids.clone()
        swapped[0, 2], swapped[1, 1] = 41, 30
        torch.testing.assert_close(bag(input_ids=swapped, attention_mask=mask).logits,
                                   bag(input_ids=ids, attention_mask=mask).logits)
    full = distill.bag_student(teacher, dim=8, seed=0)
    assert full.bag.embed.num_embeddings == teacher.config.vocab_size and torch.equal(full.id_map, torch.arange(50))


def test_training_pieces_counts_only_the_sources():
    from tlcourse.chapters import ch08_distill as ch

    encoded = {"a": {"input_ids": torch.tensor([[3, 4, 4, 0]])}, "b": {"input_ids": torch.tensor([[7, 3, 0, 0]])},
               "test": {"input_ids": torch.tensor([[9, 9, 9, 9]])}}
    assert ch.training_pieces(encoded, ("a", "b")).tolist() == [0, 3, 4, 7]
    assert ch.training_pieces(encoded, ("a", "b"), min_count=2).tolist() == [0, 3, 4]


def test_make_student_builds_the_half_copy_or_the_bag_by_name():
    from tlcourse.chapters import ch08_distill as ch

    teacher, cfg = _tiny_bert(layers=4), _chapter_cfg(half_layers=(1, 3))
    half = ch.make_student("half", cfg, teacher)
    assert type(half) is type(teacher) and half.config.num_hidden_layers == 2
    for i, j in enumerate(cfg.half_layers):  # the student's layer i is the teacher's layer cfg.half_layers[i]
        for name, value in half.bert.encoder.layer[i].state_dict().items():
            assert torch.equal(value, teacher.bert.encoder.layer[j].state_dict()[name]), (i, j, name)
    assert torch.equal(half.classifier.weight, teacher.classifier.weight)
    assert torch.equal(half.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    keep = torch.tensor([5, 9, 12])
    bag = ch.make_student("bag", cfg, teacher, seed=3, pieces=keep)
    assert isinstance(bag, distill.PieceBag) and bag.bag.hidden.in_features == cfg.bag_dim == 16
    assert bag.bag.embed.num_embeddings == 5  # the 3 pieces + [PAD] + one shared row
    same = distill.bag_student(teacher, dim=16, seed=3, keep=keep)  # the seed initialises it
    assert all(torch.equal(a, b) for a, b in zip(bag.state_dict().values(), same.state_dict().values()))
    other = ch.make_student("bag", cfg, teacher, seed=4)
    assert other.bag.embed.num_embeddings == 50 and not torch.equal(other.bag.head.weight, bag.bag.head.weight)
    with pytest.raises(ValueError, match="unknown student 'tiny'; use 'half' or 'bag'"):
        ch.make_student("tiny", cfg, teacher)


def _splits_for_trimming():
    """Training text with pieces 5..39 only; test rows 0-3 use those pieces, rows 4-7 also 40..49."""
    g = torch.Generator().manual_seed(0)
    part = lambda low, high, n: {"input_ids": torch.randint(low, high, (n, 8), generator=g),  # noqa: E731
                                 "attention_mask": torch.ones(n, 8, dtype=torch.long)}
    test = part(5, 40, 8)
    test["input_ids"][4:, 3] = torch.arange(40, 44)
    test["input_ids"][6:, 5] = torch.tensor([48, 49])
    test["labels"] = torch.tensor([0, 1] * 4)
    return {"labelled": part(5, 25, 16), "unlabelled": part(20, 40, 16), "test": test}


def test_trimmed_copy_keeps_the_training_pieces_and_maps_the_others_to_unk():
    from tlcourse.chapters import ch08_distill as ch

    student, encoded = _tiny_bert(), _splits_for_trimming()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    test_ids = encoded["test"]["input_ids"].clone()
    small, test = ch.trimmed(student, encoded, unk_id=1)
    training = torch.cat([encoded["labelled"]["input_ids"], encoded["unlabelled"]["input_ids"]])
    kept = sorted(set(training.flatten().tolist()))
    new_id = {old: new for new, old in enumerate(sorted(kept + [1]))}  # [UNK] (id 1) is kept too
    assert small.bert.embeddings.word_embeddings.num_embeddings == len(kept) + 1 == small.config.vocab_size
    expected = torch.tensor([[new_id.get(i, new_id[1]) for i in row] for row in test_ids.tolist()])
    assert torch.equal(test["input_ids"], expected) and torch.equal(test["labels"], encoded["test"]["labels"])
    # the original is untouched: its vocabulary, weights and test split
    assert student.bert.embeddings.word_embeddings.num_embeddings == 50 == student.config.vocab_size
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())
    assert torch.equal(encoded["test"]["input_ids"], test_ids)
    with torch.no_grad():
        got = small(input_ids=test["input_ids"], attention_mask=test["attention_mask"]).logits
        full = student(input_ids=test_ids, attention_mask=test["attention_mask"]).logits
        unk = torch.where(test_ids >= 40, 1, test_ids)  # the pieces no training row has, as [UNK]
        as_unk = student(input_ids=unk, attention_mask=test["attention_mask"]).logits
    torch.testing.assert_close(got[:4], full[:4])      # rows whose pieces are all kept: the same function
    torch.testing.assert_close(got, as_unk)            # the other rows: as if their unkept pieces were [UNK]
    assert not torch.allclose(got[4:], full[4:])


def test_trimmed_with_min_count_drops_the_rare_training_pieces():
    from tlcourse.chapters import ch08_distill as ch

    encoded = _splits_for_trimming()
    counts = torch.bincount(torch.cat([encoded["labelled"]["input_ids"], encoded["unlabelled"]["input_ids"]]).flatten())
    frequent = (counts >= 10).nonzero().flatten().tolist()
    assert 0 < len(frequent) < len(counts.nonzero())  # some pieces of the training text are dropped
    small, test = ch.trimmed(_tiny_bert(), encoded, unk_id=1, min_count=10)
    assert small.config.vocab_size == len(frequent) + 1
    kept_test = torch.isin(encoded["test"]["input_ids"], torch.tensor(frequent))
    unk = sorted(frequent + [1]).index(1)
    assert (test["input_ids"][~kept_test] == unk).all() and (test["input_ids"][kept_test] != unk).all()
    small_l, _ = ch.trimmed(_tiny_bert(), encoded, unk_id=1, sources=("labelled",))  # only the labelled text
    assert small_l.config.vocab_size == len(encoded["labelled"]["input_ids"].unique()) + 1
