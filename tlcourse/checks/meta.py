"""Self-checks for chapter 7 (meta-learning): ``tlcourse.checks.meta.<exercise>``."""

from __future__ import annotations

from typing import Callable

import torch

from . import Case, CheckResult, Property, check_properties, compare_to_reference


def _labels(classes: int, per_class: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.arange(classes).repeat_interleave(per_class)[
        torch.randperm(classes * per_class, generator=g)
    ]


def _as_index(x) -> torch.Tensor | None:
    t = torch.as_tensor(x)
    return t.long() if t.dim() == 1 and not t.is_floating_point() else None


def _episode_problem(out, case: Case) -> str | None:
    labels, n_way, k_shot, n_query = case.args[:4]
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return "expected a pair (support, query) of index tensors"
    support, query = (_as_index(x) for x in out)
    if support is None or query is None:
        return "support and query must be 1-D integer tensors of image indices"
    if support.shape != (n_way * k_shot,) or query.shape != (n_way * n_query,):
        return (
            f"expected {n_way * k_shot} support and {n_way * n_query} query indices, got "
            f"{tuple(support.shape)} and {tuple(query.shape)}"
        )
    if len(set(support.tolist()) | set(query.tolist())) != len(support) + len(query):
        return (
            "an image index appears twice (within the support set, "
            "within the query set, or in both)"
        )
    s_cls, q_cls = labels[support].view(n_way, k_shot), labels[query].view(n_way, n_query)
    for i in range(n_way):
        if len(set(s_cls[i].tolist())) != 1 or len(set(q_cls[i].tolist())) != 1:
            return f"block {i} (episode class {i}) mixes images of several classes"
        if s_cls[i, 0] != q_cls[i, 0]:
            return (
                f"episode class {i} is class {int(s_cls[i, 0])} in "
                f"the support set but {int(q_cls[i, 0])} in the query set"
            )
    if len(set(s_cls[:, 0].tolist())) != n_way:
        return "the same class was drawn twice: an episode needs n_way different classes"
    return None


def sample_episode(fn: Callable) -> CheckResult:
    """Exercise 7.1: ``fn(labels, n_way, k_shot, n_query, seed) -> (support, query)`` image indices,
    class by class (episode class 0's images first), disjoint, N different classes, reproducible per
    seed."""
    cases = [
        Case((_labels(10, 6, 0), 5, 1, 3, 0), label="5-way 1-shot from 10 classes"),
        Case((_labels(6, 8, 1), 3, 5, 3, 7), label="3-way 5-shot, every image of a class used"),
        Case((_labels(5, 20, 2), 5, 2, 4, 3), label="as many classes as ways"),
    ]

    def varies_with_seed(out, case: Case) -> str | None:
        labels, n_way, k_shot, n_query, seed = case.args
        drawn = set()
        for s in range(seed, seed + 6):
            try:
                drawn.add(
                    tuple(
                        torch.as_tensor(fn(labels.clone(), n_way, k_shot, n_query, s)[0]).tolist()
                    )
                )
            except Exception as err:  # noqa: BLE001 - a student's bug becomes a hint
                return f"raised {type(err).__name__} for seed {s}: {err}"
        return (
            None
            if len(drawn) > 1
            else "six different seeds gave the same episode: draw the classes and images at random"
        )

    def draws_everything(out, case: Case) -> str | None:
        labels, n_way, k_shot, n_query, seed = case.args
        blocks = []  # (class, support block, query block) of every episode class over 30 seeds
        for s in range(seed, seed + 30):
            try:
                support, query = (
                    torch.as_tensor(x) for x in fn(labels.clone(), n_way, k_shot, n_query, s)
                )
            except Exception as err:  # noqa: BLE001 - a student's bug becomes a hint
                return f"raised {type(err).__name__} for seed {s}: {err}"
            for sb, qb in zip(support.view(n_way, k_shot), query.view(n_way, n_query)):
                blocks.append((int(labels[sb[0]]), sb.tolist(), qb.tolist()))
        missing = sorted(set(labels.tolist()) - {c for c, _, _ in blocks})
        if missing:
            return (
                f"over 30 seeds, classes {missing} were never drawn: every class must be able to "
                "appear in an episode"
            )
        first = {c: torch.nonzero(labels == c).flatten().tolist() for c, _, _ in blocks}
        if all(sb + qb == first[c][: k_shot + n_query] for c, sb, qb in blocks):
            return (
                "over 30 seeds, every class's support and query images were its first images in "
                "index order: draw the images of each class at random too"
            )
        return None

    properties = [
        Property(
            "a valid N-way K-shot episode",
            _episode_problem,
            "draw n_way distinct classes (without replacement); "
            "for each, draw k_shot + n_query distinct images of that class and split them; "
            "concatenate the blocks class by class",
        ),
        Property(
            "a new episode for a new seed",
            varies_with_seed,
            "use torch.Generator().manual_seed(seed) and pass it to torch.randperm",
        ),
        Property(
            "every class and every image can be drawn",
            draws_everything,
            "pick the n_way classes with torch.randperm over all the classes (not the first ones), "
            "and shuffle each class's images with torch.randperm before taking k_shot + n_query",
        ),
    ]
    return check_properties("sample_episode", fn, cases, properties)


def _reference_proto(support, support_labels, query, n_way):
    onehot = torch.nn.functional.one_hot(support_labels, n_way).to(support.dtype)
    protos = onehot.T @ support / onehot.sum(0)[:, None]
    return -((query[:, None, :] - protos[None]) ** 2).sum(-1)


def proto_logits(fn: Callable) -> CheckResult:
    """Exercise 7.2: ``fn(support, support_labels, query, n_way)``: negative squared Euclidean
    distances from every query embedding to every class's prototype (the mean of its support
    embeddings)."""
    g = torch.Generator().manual_seed(9)
    cases = [
        Case(
            (
                torch.randn(3, 4, generator=g),
                torch.tensor([0, 1, 2]),
                torch.randn(5, 4, generator=g),
                3,
            ),
            label="one shot",
        ),
        Case(
            (
                torch.randn(6, 3, generator=g),
                torch.tensor([0, 0, 1, 1, 2, 2]),
                torch.randn(4, 3, generator=g),
                3,
            ),
            label="two shots, classes in order",
        ),
        Case(
            (
                torch.randn(6, 5, generator=g),
                torch.tensor([2, 0, 1, 0, 2, 1]),
                torch.randn(2, 5, generator=g),
                3,
            ),
            label="two shots, classes shuffled",
        ),
        Case(
            (
                torch.randn(8, 2, generator=g),
                torch.tensor([1, 0, 1, 0, 1, 0, 1, 0]),
                torch.randn(3, 2, generator=g),
                2,
            ),
            label="four shots",
        ),
    ]
    hints = {
        "one shot": (
            "with one example per class the prototype is that example; "
            "the logit is -||q - c||^2 (squared, negated)"
        ),
        "two shots, classes in order": (
            "the prototype is the MEAN of the class's support embeddings"
        ),
        "two shots, classes shuffled": (
            "group the support embeddings by their label, not by their position"
        ),
    }
    return compare_to_reference(
        "proto_logits", fn, _reference_proto, cases, hints, rtol=1e-4, atol=1e-5
    )


def _reference_maml(w, xs, ys, xq, yq, alpha):
    w = w.detach().clone().requires_grad_(True)
    inner = ((xs @ w - ys) ** 2).mean()
    (g,) = torch.autograd.grad(inner, w, create_graph=True)
    adapted = w - alpha * g
    (meta,) = torch.autograd.grad(((xq @ adapted - yq) ** 2).mean(), w)
    return meta


def maml_gradient(fn: Callable) -> CheckResult:
    """Exercise 7.3: ``fn(w, xs, ys, xq, yq, alpha)``: for the linear model ``x @ w`` with mean
    squared error, the gradient with respect to ``w`` of the query loss after one inner step
    ``w' = w - alpha grad L_support(w)``, differentiating through the inner step (second-order
    MAML)."""
    g = torch.Generator().manual_seed(10)

    def case(n_s, n_q, d, alpha, label):
        return Case(
            (
                torch.randn(d, generator=g),
                torch.randn(n_s, d, generator=g),
                torch.randn(n_s, generator=g),
                torch.randn(n_q, d, generator=g),
                torch.randn(n_q, generator=g),
                alpha,
            ),
            label=label,
        )

    cases = [
        case(4, 6, 3, 0.0, "alpha = 0 (no adaptation)"),
        case(5, 5, 3, 0.1, "one inner step"),
        case(10, 8, 4, 0.3, "a large inner step"),
        case(2, 3, 5, 0.05, "fewer support points than weights"),
    ]
    hints = {
        "alpha = 0 (no adaptation)": (
            "with alpha = 0 the answer is the gradient of the query loss at w itself"
        ),
        "one inner step": (
            "evaluate the query loss at the ADAPTED weights w - alpha * grad, "
            "and keep the graph of the inner gradient "
            "(torch.autograd.grad(..., create_graph=True)) so that the Hessian term counts"
        ),
        "a large inner step": (
            "the second-order term matters most for large alpha: do not detach the inner gradient"
        ),
    }
    return compare_to_reference(
        "maml_gradient", fn, _reference_maml, cases, hints, rtol=1e-4, atol=1e-5
    )


def _reference_head(support, support_labels, query, n_way, c):
    from ..meta import fit_linear_heads

    w, b = fit_linear_heads(support[None].double(), support_labels[None], n_way, c, max_iter=500)
    return torch.softmax(query.double() @ w[0].T + b[0], -1).to(query.dtype)


def linear_head(fn: Callable) -> CheckResult:
    """Exercise 7.5: ``fn(support, support_labels, query, n_way, c)``: the class probabilities of
    the queries under the multinomial logistic regression fitted on the support set, minimising
    c * sum_i CE(W x_i + b, y_i) + ||W||^2 / 2 (bias not penalised), to convergence."""
    g = torch.Generator().manual_seed(11)

    def case(counts, d, c, label, q=5):
        labels = torch.arange(len(counts)).repeat_interleave(torch.tensor(counts))
        support = torch.nn.functional.normalize(torch.randn(len(labels), d, generator=g), dim=-1)
        query = torch.nn.functional.normalize(torch.randn(q, d, generator=g), dim=-1)
        return Case((support, labels, query, len(counts), c), label=label)

    cases = [
        case([1, 1, 1], 4, 1.0, "one shot, c = 1"),
        case([2, 2, 2, 2], 6, 0.2, "strong regularisation, c = 0.2"),
        case([3, 1, 2], 5, 5.0, "unbalanced support, c = 5"),
        case([4, 4], 3, 20.0, "weak regularisation, c = 20"),
    ]
    hints = {
        "one shot, c = 1": (
            "return softmax probabilities of shape (queries, n_way), from a head W (n_way, d) "
            "and a bias b (n_way,) fitted on the support set only"
        ),
        "strong regularisation, c = 0.2": (
            "the objective is c * SUM of the cross-entropies + ||W||^2 / 2: "
            "check how c enters, and that you sum (not average) over the support examples"
        ),
        "unbalanced support, c = 5": (
            "do not penalise the bias: with unequal class counts it carries the class frequencies"
        ),
        "weak regularisation, c = 20": (
            "fit to convergence (e.g. torch.optim.LBFGS with line_search_fn='strong_wolfe', or "
            "many full-batch steps): with weak regularisation few steps are far from the optimum"
        ),
    }
    return compare_to_reference(
        "linear_head", fn, _reference_head, cases, hints, rtol=1e-3, atol=2e-3
    )
