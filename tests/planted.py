"""The shared body of the exercise-check tests: a check passes its reference, tells a stub it is
not implemented, and fails each planted mistake with a hint that names it, showing no code."""


def _stub(*args, **kwargs):
    raise NotImplementedError("Exercise")


def assert_catches_planted(run, reference, planted, capsys) -> None:
    """``run``: a check; ``planted``: ``name -> (wrong function, words its message must hold)``."""
    assert run(reference)
    stub = run(_stub)
    assert not stub and "not implemented yet" in stub.message
    results = {name: run(fn) for name, (fn, _) in planted.items()}
    out = capsys.readouterr().out
    assert not any(results.values()), [name for name, r in results.items() if r]
    unhelpful = [name for name, (_, words) in planted.items() if words not in results[name].message]
    assert not unhelpful, {name: results[name].message for name in unhelpful}
    assert "hint:" in out and "def " not in out
