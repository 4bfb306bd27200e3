"""Chapter 9's self-checks (``tlcourse.checks.finetuning``): each passes the reference, tells a stub
it is not implemented, and catches each planted mistake with a hint, showing no code."""
import pytest
import torch

from tlcourse import checks, strategies
from tlcourse.finetune import MeanPoolClassifier


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 9")


def _rates(lr, decay, n_layers):
    return [lr / decay ** (n_layers - d) for d in range(n_layers + 1)]


def _l2sp(params, start, lam):
    return lam * sum((params[n] - start[n]).pow(2).sum() for n in start)


PLANTED = {
    "layer_rates": (_rates, {
        "top first": lambda lr, d, n: _rates(lr, d, n)[::-1],
        "multiplied, not divided": lambda lr, d, n: [lr * d ** (n - i) for i in range(n + 1)],
        "embeddings left out": lambda lr, d, n: _rates(lr, d, n)[1:],
        "one power too many": lambda lr, d, n: [r / d for r in _rates(lr, d, n)],
        "linear decay": lambda lr, d, n: [lr - (n - i) * lr / (n + 1) for i in range(n + 1)],
    }),
    "l2sp_penalty": (_l2sp, {
        "a distance, not its square": lambda p, s, lam: lam * sum((p[n] - s[n]).norm() for n in s),
        "lam / 2": lambda p, s, lam: _l2sp(p, s, lam) / 2,
        "the head pulled to zero": lambda p, s, lam: _l2sp(p, s, lam)
        + lam * sum(v.pow(2).sum() for n, v in p.items() if n not in s),
        "decay to zero (weight decay)": lambda p, s, lam: lam * sum(p[n].pow(2).sum() for n in s),
        "a float, not a tensor": lambda p, s, lam: float(_l2sp(p, s, lam)),
        "detached": lambda p, s, lam: _l2sp(p, s, lam).detach(),
    }),
    "block_for_shift": ({"input": "first", "output": "last"}.__getitem__, {
        "the usual habit: always the last": lambda kind: "last",
        "swapped": {"input": "last", "output": "first"}.__getitem__,
        "always the first": lambda kind: "first",
    }),
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(PLANTED))
def test_chapter9_checks_catch_planted_mistakes(check, capsys):
    run = getattr(checks.finetuning, check)
    reference, planted = PLANTED[check]
    assert run(reference)
    stub = run(_stub)
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not run(fn) for name, fn in planted.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out


def test_layer_rates_reference_is_the_modules_rule():
    """The exercise's reference agrees with what discriminative_groups gives a real model."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)  # fmt: skip
    torch.manual_seed(0)
    model = MeanPoolClassifier(BertModel(config, add_pooling_layer=False), 2)
    groups = strategies.discriminative_groups(model, 1e-3, decay=2.6, head_lr=5e-3)
    assert [g["lr"] for g in groups[:-1]] == pytest.approx(_rates(1e-3, 2.6, 3))
    assert groups[-1]["name"] == "head" and groups[-1]["lr"] == 5e-3
