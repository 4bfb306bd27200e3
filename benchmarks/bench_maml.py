"""MAML meta-iteration: one ``torch.func.vmap`` over the tasks versus a Python loop over them.

    python benchmarks/bench_maml.py [--tasks 25] [--k 10] [--steps 1] [--repeats 200] [--method maml]

Both compute the meta-gradient of the MAML paper's sinusoid regression (network 1-40-40-1, meta-batch
``--tasks``, ``--k`` support and query points, ``--steps`` inner steps of 0.01):
:func:`tlcourse.meta.meta_gradient` (``torch.func``: ``grad`` of ``vmap`` of ``grad``) and
:func:`tlcourse.meta.meta_gradient_loop` (``torch.autograd.grad`` with ``create_graph=True``, task by
task). It first checks that the two meta-gradients agree to 1e-6, then times both alternately in the
same process (median of ``--repeats`` calls each, after warm-up) and prints milliseconds per
meta-iteration and the speed-up loop / vmap (target >= 3).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from tlcourse import meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=25)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--method", choices=["maml", "fomaml"], default="maml")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = meta.regressor()
    params = meta.params_of(model)
    batch = meta.Sinusoids().episodes(args.tasks, args.k, args.k, torch.Generator().manual_seed(0))
    fns = {"vmap": meta.meta_gradient, "loop": meta.meta_gradient_loop}
    grads = {name: fn(model, params, batch, 0.01, args.steps, args.method)[0] for name, fn in fns.items()}
    diff = max((grads["vmap"][k] - grads["loop"][k]).abs().max().item() for k in params)
    print(f"{args.method}, {args.tasks} tasks x {args.k} points, {args.steps} inner step(s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"max |vmap - loop| over the meta-gradient: {diff:.1e} (must be <= 1e-6)")
    if diff > 1e-6:
        raise SystemExit("the two meta-gradients differ: not timing")

    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(10):                                   # warm-up
        for fn in fns.values():
            fn(model, params, batch, 0.01, args.steps, args.method)
    for _ in range(args.repeats):
        for name, fn in fns.items():
            began = time.perf_counter()
            fn(model, params, batch, 0.01, args.steps, args.method)
            times[name].append(time.perf_counter() - began)
    ms = {name: 1000 * statistics.median(t) for name, t in times.items()}
    print(f"vmap {ms['vmap']:.2f} ms, loop {ms['loop']:.2f} ms per meta-iteration (median of {args.repeats})")
    print(f"speed-up loop / vmap: {ms['loop'] / ms['vmap']:.2f}x (target >= 3)")


if __name__ == "__main__":
    main()
