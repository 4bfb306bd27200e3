"""Exercise self-checks: run a student's function on several inputs and say PASS or give a hint.

A check never shows the reference code: it prints one line per outcome and returns a
:class:`CheckResult` (truthy when passed). For a student it never raises. When the book itself is
executed (``make test``, ``make book``: ``TLCOURSE_STRICT_CHECKS=1``), a check that does not pass
raises :class:`CheckFailed`, so a chapter's own solution that fails its check fails the build.
Each chapter has a module of checks named after its topic:
``tlcourse.checks.transfer.js_divergence(my_function)`` for chapter 1.

The shape of a check:

* :func:`compare_to_reference` for exercises with one right answer: the student's function and the
  reference run on the same :class:`Case` inputs (random and edge cases), outputs compared with
  :func:`match` (shapes, dtypes, values to a tolerance);
* :func:`check_properties` for exercises with many right answers (a random sampler): each
  :class:`Property` inspects the student's output and returns ``None`` or what is wrong.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = [
    "Case",
    "CheckFailed",
    "CheckResult",
    "Property",
    "check_properties",
    "compare_to_reference",
    "match",
    "summarize",
]


@dataclass
class Case:
    """One input to a checked function; ``label`` tells the student what kind of case it is."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = "random input"


@dataclass
class CheckResult:
    """The outcome of a self-check: ``passed``, the line printed, and the failing case if any."""

    name: str
    passed: bool
    message: str
    case: Case | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"<check {self.name}: {'PASS' if self.passed else 'not yet'}>"


def summarize(x: Any, width: int = 120) -> str:
    """A short description of a value: type, shape and the first few entries."""
    if isinstance(x, torch.Tensor):
        body = np.array2string(x.detach().cpu().numpy().ravel()[:6], precision=4, separator=", ")
        return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype}, first={body})"
    if isinstance(x, np.ndarray):
        body = np.array2string(x.ravel()[:6], precision=4, separator=", ")
        return f"array(shape={x.shape}, dtype={x.dtype}, first={body})"
    if isinstance(x, np.generic):
        x = x.item()  # np.float64(0.5) -> 0.5
    text = repr(x)
    return text if len(text) <= width else text[: width - 3] + "..."


def _as_array(x: Any) -> np.ndarray | None:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    return None


def match(
    got: Any, expected: Any, rtol: float = 1e-5, atol: float = 1e-7, path: str = "output"
) -> str | None:
    """``None`` when ``got`` equals ``expected`` (numbers to a tolerance), else what differs and
    where."""
    exp_arr, got_arr = _as_array(expected), _as_array(got)
    if exp_arr is not None:
        if got_arr is None:
            return f"{path}: expected an array/tensor, got {type(got).__name__}"
        if got_arr.shape != exp_arr.shape:
            return f"{path}: expected shape {exp_arr.shape}, got shape {got_arr.shape}"
        if exp_arr.dtype.kind in "fc":
            bad = ~np.isclose(got_arr, exp_arr, rtol=rtol, atol=atol, equal_nan=True)
        else:
            bad = got_arr != exp_arr
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            return (
                f"{path}: first difference at index {where}: "
                f"expected {exp_arr[where]!r}, got {got_arr[where]!r}"
            )
        return None
    if isinstance(expected, (float, int, np.floating, np.integer)) and not isinstance(
        expected, bool
    ):
        if not isinstance(got, (float, int, np.floating, np.integer)) or isinstance(got, bool):
            if _as_array(got) is not None and _as_array(got).size == 1:
                got = float(_as_array(got).ravel()[0])
            else:
                return f"{path}: expected a number, got {type(got).__name__}"
        if math.isnan(float(got)) and not math.isnan(float(expected)):
            return f"{path}: got NaN, expected {expected:.6g}"
        if not math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=max(atol, 1e-9)):
            return f"{path}: expected {float(expected):.6g}, got {float(got):.6g}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected a dict, got {type(got).__name__}"
        if set(got) != set(expected):
            return f"{path}: expected keys {sorted(expected, key=str)}, got {sorted(got, key=str)}"
        for k in expected:
            why = match(got[k], expected[k], rtol, atol, f"{path}[{k!r}]")
            if why:
                return why
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{path}: expected a {type(expected).__name__}, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{path}: expected length {len(expected)}, got length {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            why = match(g, e, rtol, atol, f"{path}[{i}]")
            if why:
                return why
        return None
    return (
        None if got == expected else f"{path}: expected {summarize(expected)}, got {summarize(got)}"
    )


def _call(fn: Callable, case: Case) -> tuple[Any, str | None]:
    """Call the student's function on a private copy of the inputs; turn any exception into a
    hint."""
    try:
        return fn(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs)), None
    except NotImplementedError as err:
        return (
            None,
            (
                f"not implemented yet ({err or 'NotImplementedError'}): "
                "replace the stub with your code"
            ),
        )
    except Exception as err:  # noqa: BLE001 - a student's bug must become a hint, not a traceback
        return None, f"raised {type(err).__name__}: {err}"


class CheckFailed(AssertionError):
    """A self-check did not pass while ``TLCOURSE_STRICT_CHECKS=1`` (the book's own solutions)."""


def _report(name: str, passed: bool, text: str, case: Case | None = None) -> CheckResult:
    line = f"PASS {name}: {text}" if passed else f"NOT YET {name}: {text}"
    print(line)
    if not passed and os.environ.get("TLCOURSE_STRICT_CHECKS") == "1":
        raise CheckFailed(
            f"{line}\n(TLCOURSE_STRICT_CHECKS=1: the book's solutions must pass their checks)"
        )
    return CheckResult(name, passed, line, case)


def _not_callable(name: str, fn: Any) -> CheckResult:
    """The report for a check given something that is not a function (often its result)."""
    return _report(
        name,
        False,
        f"expected a function, got {type(fn).__name__}; "
        "pass the function itself, without calling it",
    )


def _inputs(case: Case) -> str:
    parts = [summarize(a, 80) for a in case.args] + [
        f"{k}={summarize(v, 80)}" for k, v in case.kwargs.items()
    ]
    return ", ".join(parts)


def compare_to_reference(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[Case],
    hints: dict[str, str] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> CheckResult:
    """Run ``fn`` and ``reference`` on every case; stop at the first mismatch with a hint.

    ``hints`` maps a case label to advice shown when that kind of case fails (e.g. "identical
    corpora" -> "the divergence of a distribution from itself is 0").
    """
    if not callable(fn):
        return _not_callable(name, fn)
    for i, case in enumerate(cases, start=1):
        got, error = _call(fn, case)
        expected = reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        why = error or match(got, expected, rtol, atol)
        if why:
            hint = (hints or {}).get(case.label)
            text = (
                f"case {i}/{len(cases)} ({case.label}) failed: {why}\n"
                f"    inputs: {_inputs(case)}\n    expected: {summarize(expected)}\n"
                f"    got: {summarize(got) if error is None else '-'}"
            )
            return _report(name, False, text + (f"\n    hint: {hint}" if hint else ""), case)
    return _report(name, True, f"all {len(cases)} cases match the reference")


@dataclass
class Property:
    """A named requirement on the output:
    ``test(output, case) -> None or a description of the problem``."""

    name: str
    test: Callable[[Any, Case], str | None]
    hint: str = ""


def check_properties(
    name: str,
    fn: Callable,
    cases: Sequence[Case],
    properties: Sequence[Property],
    determinism: bool = True,
) -> CheckResult:
    """Check that ``fn``'s output has every property on every case (and is the same when called
    twice)."""
    if not callable(fn):
        return _not_callable(name, fn)
    for i, case in enumerate(cases, start=1):
        got, error = _call(fn, case)
        if error:
            return _report(
                name,
                False,
                f"case {i}/{len(cases)} ({case.label}) {error}\n    inputs: {_inputs(case)}",
                case,
            )
        for prop in properties:
            why = prop.test(got, case)
            if why:
                text = (
                    f"case {i}/{len(cases)} ({case.label}) breaks '{prop.name}': {why}\n"
                    f"    inputs: {_inputs(case)}"
                )
                return _report(
                    name, False, text + (f"\n    hint: {prop.hint}" if prop.hint else ""), case
                )
        if determinism:
            again, _ = _call(fn, case)
            why = match(again, got, path="second call")
            if why:
                return _report(
                    name,
                    False,
                    f"case {i}/{len(cases)} ({case.label}): same inputs gave a different result "
                    f"({why})\n"
                    "    hint: draw every random number from a generator seeded with `seed`",
                    case,
                )
    return _report(name, True, f"{len(properties)} properties hold on all {len(cases)} cases")


def keeps_global_rng(check: Callable) -> Callable:
    """``check``, run without changing the global random states (torch's CPU generator, numpy's,
    python's): a check seeds and draws for its cases and calls the student's code, and running or
    skipping a check cell must not change what a chapter's later cells draw."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        python_state, numpy_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            try:
                return check(*args, **kwargs)
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)

    wrapper.keeps_global_rng = True
    return wrapper


# The chapters' checks, importable as attributes:
# ``from tlcourse import checks; checks.transfer...``
from . import (  # noqa: E402
    bert,
    distill,
    elmo,
    embeddings,
    finetuning,
    lora,
    meta,
    multitask,
    selfsup,
    t5,
    transfer,
)

CHAPTER_MODULES = (
    transfer,
    embeddings,
    elmo,
    bert,
    t5,
    lora,
    meta,
    distill,
    finetuning,
    selfsup,
    multitask,
)
for _module in CHAPTER_MODULES:  # every public check of every chapter keeps the global RNGs
    for _name, _fn in list(vars(_module).items()):
        if (
            inspect.isfunction(_fn)
            and not _name.startswith("_")
            and _fn.__module__ == _module.__name__
            and _fn.__annotations__.get("return") == "CheckResult"
        ):
            setattr(_module, _name, keeps_global_rng(_fn))
