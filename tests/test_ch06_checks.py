"""Chapter 6's exercise 6.5 self-check (``tlcourse.checks.lora.plan_lora``): it passes the reference,
tells a stub it is not implemented, and catches each planted mistake with a hint, showing no code."""
from tlcourse import checks


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise 6.5")


def _plan(budget, shapes, r_tuned, alpha, lr_tuned, count=lambda o, i: o + i, fit=lambda b, n: b // n,
          scale_alpha=False, scale_lr=False, floor_one=False):
    r = fit(budget, sum(count(o, i) for o, i in shapes))
    r = max(1, r) if floor_one else r
    return (r, alpha * r / r_tuned if scale_alpha else alpha,
            lr_tuned * r_tuned / max(r, 1) if scale_lr else lr_tuned)


PLANTED = {
    "full matrix counted": lambda *a: _plan(*a, count=lambda o, i: o * i),
    "only A counted": lambda *a: _plan(*a, count=lambda o, i: i),
    "rank rounded up": lambda *a: _plan(*a, fit=lambda b, n: -(-b // n)),
    "rank rounded to nearest": lambda *a: _plan(*a, fit=lambda b, n: round(b / n)),
    "alpha scaled with r": lambda *a: _plan(*a, scale_alpha=True),
    "lr scaled with 1 / r": lambda *a: _plan(*a, scale_lr=True),
    "rank at least 1": lambda *a: _plan(*a, floor_one=True),
    "one matrix only": lambda b, s, *a: _plan(b, s[:1], *a),
}


def test_plan_lora_check_catches_planted_mistakes(capsys):
    assert checks.lora.plan_lora(_plan)
    stub = checks.lora.plan_lora(_stub)
    assert not stub and "not implemented yet" in stub.message
    caught = {name: not checks.lora.plan_lora(fn) for name, fn in PLANTED.items()}
    out = capsys.readouterr().out
    assert all(caught.values()), caught
    assert "hint:" in out and "def " not in out
