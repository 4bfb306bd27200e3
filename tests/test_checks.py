"""tlcourse.checks: the framework, and chapter 1's self-checks against the reference, the stub and
planted mistakes (each planted mistake must be caught, with a hint, and no reference code shown)."""
import inspect
from collections import Counter

import numpy as np
import pytest
import torch

from tlcourse import bow, checks, data
from tlcourse.checks import Case, match


def test_match_describes_the_first_difference():
    assert match(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])) is None
    assert "expected shape (2,), got shape (3,)" in match(np.zeros(3), np.zeros(2))
    assert "index (1,)" in match(torch.tensor([1, 5]), torch.tensor([1, 2]))
    assert "expected 0.5, got 0.6" in match(0.6, 0.5)
    assert "expected keys" in match({"a": 1}, {"b": 1})
    assert "output[1]" in match([1, 3], [1, 2])
    assert "expected a number, got str" in match("0.5", 0.5)
    assert match(np.float64(0.25), 0.25) is None


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 1.1")


def _assert_catches(run, check, reference, planted, capsys):
    """A check passes the reference, says "not implemented yet" to a stub, and fails every planted mistake
    with a hint, without ever printing the reference's code."""
    assert run(reference)
    stub = run(_stub)
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not run(fn) for name, fn in planted.items()}
    out = capsys.readouterr().out
    print(f"{check}: caught {sum(caught.values())}/{len(caught)} planted mistakes")
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out


def _js_from(counts_to_divergence):
    def fn(texts_a, texts_b):
        ca, cb = Counter(w for t in texts_a for w in t), Counter(w for t in texts_b for w in t)
        words = sorted(set(ca) | set(cb))
        p = np.array([ca[w] for w in words], float)
        q = np.array([cb[w] for w in words], float)
        return counts_to_divergence(p, q)
    return fn


def _kl(a, b, log=np.log2):
    nz = a > 0
    return float(np.sum(a[nz] * log(a[nz] / b[nz])))


PLANTED_JS = {
    "natural log": _js_from(lambda p, q: 0.5 * _kl(p / p.sum(), (p / p.sum() + q / q.sum()) / 2, np.log)
                            + 0.5 * _kl(q / q.sum(), (p / p.sum() + q / q.sum()) / 2, np.log)),
    "KL instead of JS": _js_from(lambda p, q: _kl(p / p.sum(), np.maximum(q / q.sum(), 1e-12))),
    "normalised by both corpora's total": _js_from(lambda p, q: 0.5 * _kl(p / (p + q).sum(), (p + q) / 2 / (p + q).sum())
                                                   + 0.5 * _kl(q / (p + q).sum(), (p + q) / 2 / (p + q).sum())),
    "mixture not halved": _js_from(lambda p, q: 0.5 * _kl(p / p.sum(), p / p.sum() + q / q.sum())
                                   + 0.5 * _kl(q / q.sum(), p / p.sum() + q / q.sum())),
    "only words of the first corpus": lambda a, b: bow.unigram_js_divergence(
        a, [[w for w in t if w in {x for s in a for x in s}] or [next(iter(a[0]))] for t in b]),
}


def test_js_check_passes_reference_and_catches_stub_and_planted(capsys):
    assert checks.transfer.js_divergence(bow.unigram_js_divergence)
    assert "PASS js_divergence" in capsys.readouterr().out
    result = checks.transfer.js_divergence(_stub)
    assert not result and "not implemented yet (Exercise 1.1)" in result.message
    caught = {name: not checks.transfer.js_divergence(fn) for name, fn in PLANTED_JS.items()}
    out = capsys.readouterr().out
    print(f"js_divergence: caught {sum(caught.values())}/{len(caught)} planted mistakes")
    assert all(caught.values()), caught
    assert "hint:" in out and "expected:" in out and "got:" in out
    assert "def unigram_js_divergence" not in out and "0 log 0" not in out  # never the reference code


def _budgets_independent(labels, budgets, seed):  # not nested
    rng = np.random.default_rng(seed)
    return {b: data.label_budget_indices(labels, [b], int(rng.integers(1 << 30)))[b] for b in budgets}


def _budgets_unbalanced(labels, budgets, seed):  # ignores the classes
    order = np.random.default_rng(seed).permutation(len(labels))
    return {b: order[:b] for b in budgets}


def _budgets_unseeded(labels, budgets, seed):  # global random state: differs call to call
    order = data.label_order(np.asarray(labels), np.random.default_rng())
    return {b: order[:b] for b in budgets}


def _budgets_with_replacement(labels, budgets, seed):  # off by one: rows chosen twice
    order = data.label_order(np.asarray(labels), np.random.default_rng(seed))
    return {b: np.concatenate([order[: b - 1], order[:1]]) for b in budgets}


def _budgets_ignore_seed(labels, budgets, seed):
    return data.label_budget_indices(labels, budgets, seed=0)


def _budgets_list_of_lists(labels, budgets, seed):  # wrong container
    return [data.label_budget_indices(labels, [b], seed)[b] for b in budgets]


PLANTED_BUDGETS = {f.__name__: f for f in [_budgets_independent, _budgets_unbalanced, _budgets_unseeded,
                                            _budgets_with_replacement, _budgets_ignore_seed, _budgets_list_of_lists]}


def test_budget_check_passes_reference_and_catches_stub_and_planted(capsys):
    assert checks.transfer.label_budgets(data.label_budget_indices)
    assert not checks.transfer.label_budgets(_stub)
    caught = {name: not checks.transfer.label_budgets(fn) for name, fn in PLANTED_BUDGETS.items()}
    out = capsys.readouterr().out
    print(f"label_budgets: caught {sum(caught.values())}/{len(caught)} planted mistakes")
    assert all(caught.values()), caught
    assert "nested budgets" in out and "class-balanced" in out and "different result" in out


MODEL_ANSWERS = {
    "resnet_to_xrays": {"differs": "inductive", "transfers": "parameters", "when": "sequential"},
    "bert_to_task": {"differs": "inductive", "transfers": "parameters", "when": "sequential"},
    "english_to_swahili": {"differs": "domain adaptation", "transfers": "representations", "when": "sequential"},
    "t5_flan": {"differs": "inductive", "transfers": "parameters", "when": "simultaneous"},
    "gpt4_to_small_model": {"differs": "domain adaptation", "transfers": "predictions", "when": "sequential"},
    "sst2_to_amazon": {"differs": "domain adaptation", "transfers": "parameters", "when": "sequential"},
}


def _with(scenario, axis, value):
    return {**MODEL_ANSWERS, scenario: {**MODEL_ANSWERS[scenario], axis: value}}


PLANTED_TAXONOMY = {
    "multi-task called sequential": _with("t5_flan", "when", "sequential"),
    "domain adaptation called inductive": _with("sst2_to_amazon", "differs", "inductive"),
    "distillation transfers parameters": _with("gpt4_to_small_model", "transfers", "parameters"),
    "cross-lingual called inductive": _with("english_to_swahili", "differs", "inductive"),
    "frozen SST-2 body called instances": _with("sst2_to_amazon", "transfers", "instances"),
    "distillation called relational knowledge": _with("gpt4_to_small_model", "transfers", "relational knowledge"),
    "distillation called features": _with("gpt4_to_small_model", "transfers", "features"),
}


def test_taxonomy_check_accepts_a_frozen_body_as_a_representation():
    # The chapter uses the SST-2 body frozen (a representation) as well as fine-tuned (parameters).
    for value in ("representations", "features", "Feature representations", "representation"):
        assert checks.transfer.taxonomy(_with("sst2_to_amazon", "transfers", value)), value
    assert checks.transfer.taxonomy(_with("bert_to_task", "transfers", "features"))
    # A bare "knowledge" is ambiguous (relational knowledge, or predictions): not an option.
    result = checks.transfer.taxonomy(_with("gpt4_to_small_model", "transfers", "knowledge"))
    assert not result and "'knowledge' is not one of" in result.message


def test_taxonomy_check_catches_planted_mistakes():
    caught = {name: not checks.transfer.taxonomy(answers) for name, answers in PLANTED_TAXONOMY.items()}
    print(f"taxonomy: caught {sum(caught.values())}/{len(caught)} planted mistakes")
    assert all(caught.values()), caught


def test_taxonomy_check():
    assert checks.transfer.taxonomy(MODEL_ANSWERS)
    wrong = {**MODEL_ANSWERS, "t5_flan": {**MODEL_ANSWERS["t5_flan"], "when": "sequential"},
             "sst2_to_amazon": {**MODEL_ANSWERS["sst2_to_amazon"], "differs": "inductive"}}
    result = checks.transfer.taxonomy(wrong)
    assert not result and "2 answer(s)" in result.message and "t5_flan.when: reconsider" in result.message
    assert "simultaneous" not in result.message.split("t5_flan.when")[1].split("\n")[0].split("reconsider")[0]
    typo = {**MODEL_ANSWERS, "bert_to_task": {**MODEL_ANSWERS["bert_to_task"], "transfers": "weights"}}
    assert "'weights' is not one of instances" in checks.transfer.taxonomy(typo).message
    missing = dict(MODEL_ANSWERS)
    missing.pop("t5_flan")
    assert "no answer yet for: t5_flan" in checks.transfer.taxonomy(missing).message
    assert "expected a dict" in checks.transfer.taxonomy(["inductive"]).message


# Answer keys of categorical exercises (what is accepted, not a reference computation) and a
# sentence that gives every accepted answer of each, in the order its check module would list them.
CATEGORICAL_KEYS = {
    "transfer": {s: tuple(a.values()) for s, a in MODEL_ANSWERS.items()},
    "finetuning": {"input": ("first",), "output": ("last",)},
}


def _string_constants(tree):
    import ast

    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _assert_no_readable_key(source, name, key):
    import ast

    questions = set(key)
    answers = {a for values in key.values() for a in values}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            asked = {k.value for k in node.keys if isinstance(k, ast.Constant)} & questions
            assert not asked, f"{name}:{node.lineno}: a dict keyed by {sorted(asked)}"
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
            asked = {k.arg for k in node.keywords} & questions
            assert not asked, f"{name}:{node.lineno}: dict(...) keyed by {sorted(asked)}"
    for text in _string_constants(tree):  # "scenario|axis|answer" written out would be readable
        words = set(text.replace("|", " ").split())
        for question in questions & words:
            near = answers & words - {question}
            assert not near, f"{name}: {text!r} pairs {question!r} with {sorted(near)}"


def test_the_answer_key_test_catches_plain_keys():
    key = CATEGORICAL_KEYS["finetuning"]
    for plain in ('SHIFT = {"input": "first", "output": "last"}', 'SHIFT = dict(input="first")',
                  'ANSWERS = ["input|first", "output|last"]'):
        with pytest.raises(AssertionError):
            _assert_no_readable_key(plain, "planted.py", key)
    _assert_no_readable_key('SHIFT_KINDS = ("input", "output")\nBLOCKS = ("first", "last")', "ok.py", key)


def test_check_modules_hold_no_readable_answer_keys():
    """A categorical exercise's accepted answers are stored as salted digests: no check module maps a
    scenario (or a shift) to its answer in a literal, and no answer sits next to its scenario in any
    string; the checks compare digests and still pass the model answers."""
    from pathlib import Path

    assert not hasattr(checks.transfer, "_ACCEPT")
    assert not isinstance(checks.finetuning.SHIFT_KINDS, dict)
    for module, key in CATEGORICAL_KEYS.items():
        path = Path(checks.__file__).parent / f"{module}.py"
        _assert_no_readable_key(path.read_text(), path.name, key)
    # What is stored instead: the digests of exactly the accepted answers.
    for scenario, given in MODEL_ANSWERS.items():
        for axis, value in given.items():
            accepted = checks.transfer._digest(scenario, axis, value) in checks.transfer._ACCEPTED
            assert accepted or scenario == "gpt4_to_small_model" and axis == "differs"
    for kind, (block,) in CATEGORICAL_KEYS["finetuning"].items():
        assert checks.finetuning._digest(kind, block) in checks.finetuning._ACCEPTED
        other = "last" if block == "first" else "first"
        assert checks.finetuning._digest(kind, other) not in checks.finetuning._ACCEPTED
    assert checks.finetuning.block_for_shift({"input": "first", "output": "last"}.__getitem__)
    result = checks.finetuning.block_for_shift(lambda kind: "last")
    assert not result and "hint:" in result.message and "expected" not in result.message


def test_checks_never_raise_on_bad_student_code():
    def crashes(a, b):
        return a[10][10]

    result = checks.transfer.js_divergence(crashes)
    assert not result and "raised IndexError" in result.message
    assert "pass the function itself" in checks.transfer.js_divergence(0.5).message
    result = checks.compare_to_reference("square", lambda x: x * x, lambda x: x ** 2, [Case((3,)), Case((np.arange(3),))])
    assert result and repr(result) == "<check square: PASS>"


def test_check_modules_do_not_contain_solutions_to_print():
    source = inspect.getsource(checks.transfer)
    assert "np.log2" not in source  # checks call the reference; they do not re-implement it in view


def _rehearsal(target, source, batch_size, n_source, seed, *, pairs=True, per_batch_generator=False,
               replace=True, seeded=True, extra=0):
    """Exercise 1.5's reference (all defaults), and with one option changed, a planted mistake."""
    g = torch.Generator().manual_seed(seed) if seeded else None
    (xt, yt), (xs, ys) = target, source
    while True:
        if per_batch_generator:  # a new generator for every batch: the same batch forever
            g = torch.Generator().manual_seed(seed)
        m = batch_size - n_source + extra
        i = torch.randint(len(yt), (m,), generator=g) if replace else torch.randperm(len(yt), generator=g)[:m]
        j = torch.randint(len(ys), (n_source,), generator=g)
        label_rows = i if pairs else torch.randint(len(yt), (m,), generator=g)
        yield torch.cat([xt[i], xs[j]]), torch.cat([yt[label_rows], ys[j]])


def _planted_rehearsal(change):
    """A function with the exercise's signature that calls ``_rehearsal`` through ``change``."""
    def fn(target, source, batch_size, n_source, seed):
        return change(target, source, batch_size, n_source, seed)
    return fn


PLANTED_REHEARSAL = {name: _planted_rehearsal(change) for name, change in {
    "labels drawn apart from their rows": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, seed, pairs=False),
    "n_source ignored": lambda t, s, b, k, seed: _rehearsal(t, s, b, 0, seed),
    "source rows added on top of the batch": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, seed, extra=k),
    "source rows taken from the target": lambda t, s, b, k, seed: _rehearsal(t, t, b, k, seed),
    "global random state": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, seed, seeded=False),
    "a new generator every batch": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, seed, per_batch_generator=True),
    "without replacement": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, seed, replace=False),
    "seed ignored": lambda t, s, b, k, seed: _rehearsal(t, s, b, k, 0),
    "one batch, not a stream": lambda t, s, b, k, seed: [next(_rehearsal(t, s, b, k, seed))],
}.items()}


def test_rehearsal_check_passes_reference_and_catches_stub_and_planted(capsys):
    _assert_catches(checks.transfer.rehearsal_batches, "rehearsal_batches", _rehearsal, PLANTED_REHEARSAL, capsys)


# ---- chapter 2 ------------------------------------------------------------------------------
from tlcourse import embeddings, wordvectors  # noqa: E402
from tlcourse.chapters import ch02_embeddings as ch02  # noqa: E402


def _keep_paper_formula(counts, sample):  # the paper's 1 - discard, not the code's formula
    f = np.asarray(counts, float) / np.sum(counts)
    return np.minimum(1, np.sqrt(sample / np.maximum(f, 1e-12))) if sample else np.ones(len(counts))


PLANTED_KEEP = {
    "raw counts instead of frequencies": lambda c, t: np.minimum(1, (np.sqrt(np.asarray(c) / t) + 1) * t / np.asarray(c)) if t else np.ones(len(c)),
    "no cap at 1": lambda c, t: (np.sqrt((np.asarray(c) / np.sum(c)) / t) + 1) * t / (np.asarray(c) / np.sum(c)) if t else np.ones(len(c)),
    "crashes with sample = 0": lambda c, t: np.minimum(1, (np.sqrt((np.asarray(c) / np.sum(c)) / t) + 1) * t / (np.asarray(c) / np.sum(c))),
}
ACCEPTED_KEEP = {"the paper's formula": _keep_paper_formula}  # a correct variant


def _grads_from(error_fn):
    def fn(v, u):
        score = torch.einsum("bkd,bd->bk", u, v)
        loss = -(torch.nn.functional.logsigmoid(score[:, 0]) + torch.nn.functional.logsigmoid(-score[:, 1:]).sum(1))
        err = error_fn(score)
        return loss, torch.einsum("bk,bkd->bd", err, u), err[:, :, None] * v[:, None, :]
    return fn


def _labels(score):
    y = torch.zeros_like(score)
    y[:, 0] = 1
    return y


PLANTED_SGNS = {
    "sign flipped": _grads_from(lambda s: _labels(s) - torch.sigmoid(s)),
    "every word labelled as context": _grads_from(lambda s: torch.sigmoid(s) - 1),
    "sigmoid forgotten": _grads_from(lambda s: s - _labels(s)),
    "loss summed over the batch": lambda v, u: (embeddings.sgns_loss(v, u).sum(), *embeddings.sgns_grads(v, u)[1:]),
}


def _cos_add_from(exclude, normalise_target=False, axis_bug=False):
    def fn(unit, a, b, c):
        target = unit[b] - unit[a] + unit[c]
        scores = target @ unit.T
        if axis_bug:
            scores = scores.T
        rows = torch.arange(scores.shape[0])[:, None]
        if exclude:
            scores[rows, torch.stack([a, b, c], 1)[: scores.shape[0]]] = -float("inf")
        return scores.argmax(1)
    return fn


PLANTED_ANALOGY = {
    "question words not excluded": _cos_add_from(exclude=False),
    "wrong axis": _cos_add_from(exclude=False, axis_bug=True),
    "a - b + c instead of b - a + c": lambda unit, a, b, c: wordvectors.three_cos_add(unit, b, a, c),
    "excludes only c": lambda unit, a, b, c: ((unit[b] - unit[a] + unit[c]) @ unit.T).index_put_(
        (torch.arange(len(a)), c), torch.tensor(-float("inf"))).argmax(1),
}


def _coverage_from(share):
    def fn(corpus, target, min_count=1):
        counts = Counter(w for s in corpus for w in s)
        return share(counts, [w for s in target for w in s], min_count, sum(counts.values()))
    return fn


PLANTED_COVERAGE = {
    "out-of-vocabulary rate": _coverage_from(lambda c, toks, m, n: 1 - sum(c[w] >= m for w in toks) / len(toks)),
    "distinct words instead of tokens": _coverage_from(lambda c, toks, m, n: sum(c[w] >= m for w in set(toks)) / len(set(toks))),
    "min_count ignored": _coverage_from(lambda c, toks, m, n: sum(c[w] >= 1 for w in toks) / len(toks)),
    "more than min_count": _coverage_from(lambda c, toks, m, n: sum(c[w] > m for w in toks) / len(toks)),
    "divided by the corpus size": _coverage_from(lambda c, toks, m, n: sum(c[w] >= m for w in toks) / n),
    "corpus and target swapped": lambda corpus, target, m=1: ch02.corpus_coverage(target, corpus, m),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("keep_probability", embeddings.keep_probability, PLANTED_KEEP),
    ("sgns_grads", embeddings.sgns_grads, PLANTED_SGNS),
    ("three_cos_add", wordvectors.three_cos_add, PLANTED_ANALOGY),
    ("corpus_coverage", ch02.corpus_coverage, PLANTED_COVERAGE),
])
def test_chapter2_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.embeddings, check), check, reference, planted, capsys)


def test_keep_probability_accepts_the_papers_formula(capsys):
    for name, fn in ACCEPTED_KEEP.items():
        assert checks.embeddings.keep_probability(fn), name
    assert "the paper's formula" in capsys.readouterr().out


# ---- chapter 3 ------------------------------------------------------------------------------
from tlcourse import elmo  # noqa: E402

PLANTED_MIX = {
    "no softmax": lambda L, w, g: g * torch.tensordot(w, L, dims=([0], [0])),
    "gamma forgotten": lambda L, w, g: torch.tensordot(torch.softmax(w, 0), L, dims=([0], [0])),
    "plain mean": lambda L, w, g: g * L.mean(0),
    "sigmoid weights": lambda L, w, g: g * torch.tensordot(torch.sigmoid(w), L, dims=([0], [0])),
}


def _flip_all(x, lengths):
    return torch.flip(x, [1])


def _off_by_one(x, lengths):
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b, : n - 1] = x[b, : n - 1].flip(0)
    return out


def _pad_first(x, lengths):  # reverses padding into the front
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[b] = x[b].flip(0)
    return out


PLANTED_REVERSE = {"flip everything": _flip_all, "off by one": _off_by_one, "padding moved to the front": _pad_first}

PLANTED_HIGHWAY = {
    "gate swapped": lambda x, t, g: torch.sigmoid(g(x)) * x + (1 - torch.sigmoid(g(x))) * torch.relu(t(x)),
    "no relu": lambda x, t, g: torch.sigmoid(g(x)) * t(x) + (1 - torch.sigmoid(g(x))) * x,
    "no carry path": lambda x, t, g: torch.sigmoid(g(x)) * torch.relu(t(x)),
    "tanh gate": lambda x, t, g: torch.tanh(g(x)) * torch.relu(t(x)) + (1 - torch.tanh(g(x))) * x,
}


def _reference_mix(L, w, g):
    return g * torch.tensordot(torch.softmax(w, 0), L, dims=([0], [0]))


def _reference_elmo_input(static, layers, mix):
    s = torch.softmax(mix.w.detach(), 0)
    return torch.cat([static, mix.gamma.detach() * torch.tensordot(s, layers, dims=([0], [0]))], -1)


PLANTED_ELMO_INPUT = {
    "biLM part first": lambda x, L, m: torch.cat([m(L), x], -1),
    "mean of the layers": lambda x, L, m: torch.cat([x, L.mean(0)], -1),
    "top layer only": lambda x, L, m: torch.cat([x, L[-1]], -1),
    "static vectors mixed too": lambda x, L, m: m(torch.cat([x.expand(L.shape[0], -1, -1), L], -1)),
}


def _reference_highway(x, t, g):
    gate = torch.sigmoid(g(x))
    return gate * torch.relu(t(x)) + (1 - gate) * x


@pytest.mark.parametrize("check, reference, planted", [
    ("scalar_mix", _reference_mix, PLANTED_MIX),
    ("reverse_padded", elmo.reverse_padded, PLANTED_REVERSE),
    ("highway", _reference_highway, PLANTED_HIGHWAY),
    ("elmo_input", _reference_elmo_input, PLANTED_ELMO_INPUT),
])
def test_chapter3_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.elmo, check), check, reference, planted, capsys)


# ---- chapter 4 ------------------------------------------------------------------------------
import math  # noqa: E402

import torch.nn.functional as F  # noqa: E402


def _attention(q, k, v, mask, scale=True, use_mask=True, dim=-1):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if use_mask:
        scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim) @ v


def _mask_queries(q, k, v, mask):  # masks padded *queries* instead of keys
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask.bool()[:, None, :, None], -1e9)
    return torch.softmax(scores, -1) @ v


PLANTED_ATTENTION = {
    "no 1/sqrt(d)": lambda q, k, v, m: _attention(q, k, v, m, scale=False),
    "padding ignored": lambda q, k, v, m: _attention(q, k, v, m, use_mask=False),
    "softmax over queries": lambda q, k, v, m: _attention(q, k, v, m, dim=-2),
    "masks queries": _mask_queries,
}


def _masking(p_choose=0.15, p_mask=0.8, p_random=0.5, honour_special=True, labels_from_inputs=False, seeded=True):
    def fn(ids, special, mask_id, vocab, seed):
        g = torch.Generator().manual_seed(seed if seeded else int(torch.randint(10**6, ())))
        chosen = torch.rand(ids.shape, generator=g) < p_choose
        if honour_special:
            chosen &= ~special
        inputs = ids.clone()
        r = torch.rand(ids.shape, generator=g)
        masked = chosen & (r < p_mask)
        rand = chosen & ~masked & (torch.rand(ids.shape, generator=g) < p_random)
        inputs[masked] = mask_id
        inputs[rand] = torch.randint(vocab, ids.shape, generator=g)[rand]
        labels = (inputs if labels_from_inputs else ids).masked_fill(~chosen, -100)
        return inputs, labels
    return fn


def _split_in_reading_order(ids, special, mask_id, vocab, seed):
    # random 15% chosen, but the first 80% of them (in reading order) masked, then 10% random
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(ids.shape, generator=g) < 0.15) & ~special
    inputs, where = ids.clone(), chosen.flatten().nonzero().flatten()
    n_mask, n_random = int(0.8 * len(where)), int(0.1 * len(where))
    flat = inputs.view(-1)
    flat[where[:n_mask]] = mask_id
    flat[where[n_mask:n_mask + n_random]] = torch.randint(vocab, (n_random,), generator=g)
    return inputs, ids.masked_fill(~chosen, -100)


def _labels_zero_elsewhere(ids, special, mask_id, vocab, seed):
    inputs, labels = _masking()(ids, special, mask_id, vocab, seed)
    return inputs, labels.masked_fill(labels == -100, 0)


PLANTED_MASKING = {
    "special tokens chosen": _masking(honour_special=False),
    "every chosen token masked": _masking(p_mask=1.0),
    "labels from the corrupted inputs": _masking(labels_from_inputs=True),
    "12% chosen (0.15 x 0.8)": _masking(p_choose=0.12),
    "no unchanged tokens": _masking(p_random=1.0),
    "unseeded": _masking(seeded=False),
    "labels 0 instead of -100": _labels_zero_elsewhere,
    "80/10/10 by reading order": _split_in_reading_order,
}


def _full_then_select(hidden, labels, head):  # right loss, but the head runs everywhere
    logits = head(hidden)
    chosen = labels != -100
    return F.cross_entropy(logits[chosen], labels[chosen])


PLANTED_GATHERED = {
    "mean over all positions": lambda h, y, head: F.cross_entropy(head(h).flatten(0, 1), y.clamp(min=0).flatten()),
    "sum instead of mean": lambda h, y, head: F.cross_entropy(head(h[y != -100]), y[y != -100], reduction="sum"),
    "head on every position": _full_then_select,
    "labels of the wrong rows": lambda h, y, head: F.cross_entropy(head(h[y != -100]), y[y != -100].flip(0)),
    "F.linear with the head's weights everywhere": lambda h, y, head: F.cross_entropy(
        F.linear(h, head.weight, head.bias)[y != -100], y[y != -100]),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("attention", _attention, PLANTED_ATTENTION),
    ("mask_tokens", _masking(), PLANTED_MASKING),
    ("gathered_loss", lambda h, y, head: F.cross_entropy(head(h[y != -100]), y[y != -100]), PLANTED_GATHERED),
])
def test_chapter4_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.bert, check), check, reference, planted, capsys)


# ---- chapter 5 ------------------------------------------------------------------------------
from tlcourse import t5  # noqa: E402


def _corrupt(ids, mask, sentinels, new_span=lambda m, i: m[i] and (i == 0 or not m[i - 1]), sentinel=lambda s, k: s[k],
             keep_in_target=True):
    inputs, targets, span = [], [], -1
    for i, token in enumerate(ids):
        if mask[i]:
            if new_span(mask, i):
                span += 1
                inputs.append(sentinel(sentinels, span))
                targets.append(sentinel(sentinels, span))
            if keep_in_target:
                targets.append(token)
        else:
            inputs.append(token)
    return inputs, targets


PLANTED_SPAN = {
    "one sentinel per token": lambda ids, m, s: _corrupt(ids, m, list(s) * 50, new_span=lambda m, i: m[i]),
    "sorted sentinels": lambda ids, m, s: _corrupt(ids, m, sorted(s)),
    "span at position 0 missed": lambda ids, m, s: _corrupt(ids, m, s, new_span=lambda m, i: i > 0 and m[i] and not m[i - 1]),
    "spans left out of the target": lambda ids, m, s: _corrupt(ids, m, s, keep_in_target=False),
    "inputs and targets swapped": lambda ids, m, s: _corrupt(ids, m, s)[::-1],
}


def _rates(sizes, cap, temperature, use_cap=True, renormalise=True, power=lambda T: 1 / T):
    limited = {t: min(n, cap) if (cap is not None and use_cap) else n for t, n in sizes.items()}
    total = sum(limited.values())
    scaled = {t: (n / total) ** power(temperature) for t, n in limited.items()}
    norm = sum(scaled.values()) if renormalise else 1.0
    return {t: v / norm for t, v in scaled.items()}


PLANTED_RATES = {
    "cap ignored": lambda s, c, T: _rates(s, c, T, use_cap=False),
    "not renormalised": lambda s, c, T: _rates(s, c, T, renormalise=False),
    "power T instead of 1/T": lambda s, c, T: _rates(s, c, T, power=lambda T: T),
    "cap applied after normalising": lambda s, c, T: {t: r / sum(min(v, c or 1e18) for v in _rates(s, None, T).values())
                                                      for t, r in {t: min(v, c or 1e18) for t, v in _rates(s, None, T).items()}.items()},
}


def _logprob(logits, labels, reduce="sum", log=lambda x: x.log_softmax(-1)):
    picked = log(logits).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    picked = picked.masked_fill(labels == -100, 0.0)
    return picked.sum(-1) if reduce == "sum" else picked.sum(-1) / (labels != -100).sum(-1)


PLANTED_LOGPROB = {
    "mean instead of sum": lambda lo, y: _logprob(lo, y, reduce="mean"),
    "padding counted": lambda lo, y: lo.log_softmax(-1).gather(-1, y.clamp(min=0)[..., None])[..., 0].sum(-1),
    "probabilities, not logs": lambda lo, y: _logprob(lo, y, log=lambda x: x.softmax(-1)),
    "log of softmax underflows": lambda lo, y: _logprob(lo, y, log=lambda x: x.softmax(-1).float().clamp(min=1e-4).log()),
    "raw logits": lambda lo, y: _logprob(lo, y, log=lambda x: x),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("span_corrupt", t5.corrupt_with_mask, PLANTED_SPAN),
    ("mixing_rates", lambda s, c, T: t5.mixing_rates(s, "temperature", cap=c, temperature=T), PLANTED_RATES),
    ("sequence_logprob", lambda lo, y: _logprob(lo, y), PLANTED_LOGPROB),
])
def test_chapter5_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.t5, check), check, reference, planted, capsys)


# ---- chapter 6 ------------------------------------------------------------------------------
def _lora(x, w, b, A, B, alpha, scale=lambda alpha, r: alpha / r, base=True):
    out = (x @ A.T) @ B.T * scale(alpha, A.shape[0])
    return out + (x @ w.T + b if base else 0)


PLANTED_LORA = {
    "no scaling": lambda x, w, b, A, B, a: _lora(x, w, b, A, B, a, scale=lambda a, r: 1.0),
    "scaled by alpha only": lambda x, w, b, A, B, a: _lora(x, w, b, A, B, a, scale=lambda a, r: a),
    "base layer forgotten": lambda x, w, b, A, B, a: _lora(x, w, b, A, B, a, base=False),
    "bias forgotten": lambda x, w, b, A, B, a: _lora(x, w, torch.zeros_like(b), A, B, a),
    "2-D inputs only": lambda x, w, b, A, B, a: torch.mm(x, w.T) + b + torch.mm(torch.mm(x, A.T), B.T) * a / A.shape[0],
}


def _adapter(h, dw, db, uw, ub, act=torch.nn.functional.gelu, residual=True):
    out = act(h @ dw.T + db) @ uw.T + ub
    return h + out if residual else out


PLANTED_ADAPTER = {
    "no residual": lambda h, dw, db, uw, ub: _adapter(h, dw, db, uw, ub, residual=False),
    "relu instead of gelu": lambda h, dw, db, uw, ub: _adapter(h, dw, db, uw, ub, act=torch.relu),
    "no non-linearity": lambda h, dw, db, uw, ub: _adapter(h, dw, db, uw, ub, act=lambda z: z),
    "up bias forgotten": lambda h, dw, db, uw, ub: _adapter(h, dw, db, uw, torch.zeros_like(ub)),
}


def _prompt(p, e, m, first=True, ones=True):
    b, n = e.shape[0], p.shape[0]
    pe = p.expand(b, -1, -1)
    emb = torch.cat([pe, e], 1) if first else torch.cat([e, pe], 1)
    pad = m.new_ones(b, n) if ones else m.new_zeros(b, n)
    return emb, (torch.cat([pad, m], 1) if first else torch.cat([m, pad], 1))


PLANTED_PROMPT = {
    "prompt appended": lambda p, e, m: _prompt(p, e, m, first=False),
    "prompt masked out": lambda p, e, m: _prompt(p, e, m, ones=False),
    "mask not extended": lambda p, e, m: (_prompt(p, e, m)[0], m),
    "all-ones mask": lambda p, e, m: (_prompt(p, e, m)[0], torch.ones(e.shape[0], e.shape[1] + p.shape[0], dtype=m.dtype)),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("lora_forward", _lora, PLANTED_LORA),
    ("adapter_forward", _adapter, PLANTED_ADAPTER),
    ("prepend_prompt", _prompt, PLANTED_PROMPT),
])
def test_chapter6_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.lora, check), check, reference, planted, capsys)


# --- chapter 7: meta-learning ------------------------------------------------------------------------------

def _episode(labels, n_way, k_shot, n_query, seed, *, replace_classes=False, overlap=False, shuffle=False, rng=None,
             first_classes=False, first_images=False):
    g = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    if replace_classes:
        chosen = classes[torch.randint(len(classes), (n_way,), generator=g)]
    elif first_classes:  # always the same N classes, in a random order
        chosen = classes[:n_way][torch.randperm(n_way, generator=g)]
    else:
        chosen = classes[torch.randperm(len(classes), generator=g if rng is None else None)[:n_way]]
    support, query = [], []
    for c in chosen:
        idx = torch.nonzero(labels == c).flatten()
        idx = idx if first_images else idx[torch.randperm(len(idx), generator=g)]
        support.append(idx[:k_shot])
        query.append(idx[:n_query] if overlap else idx[k_shot:k_shot + n_query])
    support, query = torch.cat(support), torch.cat(query)
    return (support, query[torch.randperm(len(query), generator=g)]) if shuffle else (support, query)


PLANTED_EPISODE = {
    "classes drawn with replacement": lambda *a: _episode(*a, replace_classes=True),
    "query overlaps the support set": lambda *a: _episode(*a, overlap=True),
    "query not class by class": lambda *a: _episode(*a, shuffle=True),
    "global random state, not the seed": lambda *a: _episode(*a, rng="global"),
    "the seed ignored": lambda labels, n, k, q, seed: _episode(labels, n, k, q, 0),
    "only ever the first N classes": lambda *a: _episode(*a, first_classes=True),
    "each class's first images in index order": lambda *a: _episode(*a, first_images=True),
}


def _proto(support, labels, query, n_way, *, reduce="mean", squared=True, sign=-1.0):
    protos = torch.stack([getattr(support[labels == k], reduce)(0) if reduce == "mean" else support[labels == k][0]
                          for k in range(n_way)])
    d = ((query[:, None] - protos[None]) ** 2).sum(-1)
    return sign * (d if squared else d.sqrt())


PLANTED_PROTO = {
    "distance not squared": lambda *a: _proto(*a, squared=False),
    "positive distances": lambda *a: _proto(*a, sign=1.0),
    "first example instead of the mean": lambda *a: _proto(*a, reduce="first"),
    "prototypes by position, not label": lambda s, y, q, n: _proto(s, torch.arange(len(y)) % n, q, n),
}


def _maml(w, xs, ys, xq, yq, alpha, *, create_graph=True, at_w=False, support_outer=False, sign=1.0):
    w = w.detach().clone().requires_grad_(True)
    (inner,) = torch.autograd.grad(((xs @ w - ys) ** 2).mean(), w, create_graph=create_graph)
    adapted = w if at_w else w - sign * alpha * inner
    x, y = (xs, ys) if support_outer else (xq, yq)
    (outer,) = torch.autograd.grad(((x @ adapted - y) ** 2).mean(), w)
    return outer


PLANTED_MAML = {
    "first order (no create_graph)": lambda *a: _maml(*a, create_graph=False),
    "no adaptation": lambda *a: _maml(*a, at_w=True),
    "outer loss on the support set": lambda *a: _maml(*a, support_outer=True),
    "inner step uphill": lambda *a: _maml(*a, sign=-1.0),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("sample_episode", _episode, PLANTED_EPISODE),
    ("proto_logits", _proto, PLANTED_PROTO),
    ("maml_gradient", _maml, PLANTED_MAML),
])
def test_chapter7_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.meta, check), check, reference, planted, capsys)


# --- chapter 8: knowledge distillation -----------------------------------------------------------------------

def _kd(s, t, y, alpha, tau, *, scale=True, temper_teacher=True, reduction="batchmean", reverse=False):
    p_t = F.softmax(t / tau if temper_teacher else t, -1)
    log_s = F.log_softmax(s / tau, -1)
    kl = (F.softmax(s / tau, -1) * (log_s - p_t.log())) if reverse else p_t * (p_t.log() - log_s)
    kl = kl.sum(-1).mean() if reduction == "batchmean" else kl.mean()
    return (1 - alpha) * F.cross_entropy(s, y) + alpha * (tau ** 2 if scale else 1) * kl


PLANTED_KD = {
    "no tau^2 scaling": lambda *a: _kd(*a, scale=False),
    "teacher not softened": lambda *a: _kd(*a, temper_teacher=False),
    "mean over classes too": lambda *a: _kd(*a, reduction="mean"),
    "KL the wrong way round": lambda *a: _kd(*a, reverse=True),
    "alpha on the wrong term": lambda s, t, y, alpha, tau: _kd(s, t, y, 1 - alpha, tau),
}


def _soft_grad(s, t, tau, *, power=1, batch_mean=True):
    g = tau ** power * (F.softmax(s / tau, -1) - F.softmax(t / tau, -1))
    return g / len(s) if batch_mean else g


PLANTED_SOFT_GRAD = {
    "unscaled (1 / tau)": lambda *a: _soft_grad(*a, power=-1),
    "tau^2 instead of tau": lambda *a: _soft_grad(*a, power=2),
    "no batch mean": lambda *a: _soft_grad(*a, batch_mean=False),
    "sign flipped": lambda *a: -_soft_grad(*a),
}


def _pseudo(t, threshold, *, on_logits=False, strict=False, fill=-100):
    p = t if on_logits else F.softmax(t, -1)
    confidence, label = p.max(-1)
    keep = confidence > threshold if strict else confidence >= threshold
    return torch.where(keep, label, torch.full_like(label, fill))


PLANTED_PSEUDO = {
    "threshold on logits": lambda t, th: _pseudo(t, th, on_logits=True),
    "strict inequality": lambda t, th: _pseudo(t, th, strict=True),
    "0 instead of -100": lambda t, th: _pseudo(t, th, fill=0),
}


def _dark(t, tau, *, soften=True, total=False):
    p = F.softmax(t / tau if soften else t, -1)
    off = 1 - p.max(-1).values
    return off.sum() if total else off.mean()


PLANTED_DARK = {
    "temperature ignored": lambda t, tau: _dark(t, tau, soften=False),
    "summed over rows": lambda t, tau: _dark(t, tau, total=True),
    "the largest probability itself": lambda t, tau: F.softmax(t / tau, -1).max(-1).values.mean(),
}


@pytest.mark.parametrize("check, reference, planted", [
    ("distillation_loss", _kd, PLANTED_KD),
    ("soft_gradient", _soft_grad, PLANTED_SOFT_GRAD),
    ("pseudo_labels", _pseudo, PLANTED_PSEUDO),
    ("dark_knowledge", _dark, PLANTED_DARK),
])
def test_chapter8_checks(check, reference, planted, capsys):
    _assert_catches(getattr(checks.distill, check), check, reference, planted, capsys)
