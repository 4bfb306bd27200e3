"""Loading SST-2 train (67,349 rows): tlcourse.data versus datasets' own CSV builder, same run.

    python benchmarks/bench_data_loading.py            # needs TLCOURSE_DATA (the course's data folder)

Both produce a ``datasets.Dataset`` with the same rows (asserted). tlcourse verifies the file's
sha256 and parses in memory; ``load_dataset("csv")`` writes an Arrow cache (to a temporary folder
here). Prints the median wall time of each over several cold runs and the ratio.
"""
from __future__ import annotations

import statistics
import tempfile
import time

import datasets

from tlcourse import data
from tlcourse.data import _paths, text


def cold_tlcourse() -> datasets.Dataset:
    _paths._verified.clear()  # hash the file again and parse it again, as a new process would
    text._read_sst2.cache_clear()
    return data.load_sst2()["train"]


def cold_datasets(path: str) -> datasets.Dataset:
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.load_dataset("csv", data_files=path, delimiter="\t", quoting=3, cache_dir=cache,
                                   keep_in_memory=True)["train"]
        return ds.flatten_indices()


def timed(fn, repeats: int = 5) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    root = data.data_dir()
    if root is None:
        raise SystemExit("Set TLCOURSE_DATA to the course's shared/data folder first.")
    datasets.disable_progress_bars()
    path = str(root / "sst2" / "train.tsv")
    t_ours, ours = timed(cold_tlcourse)
    t_peer, peer = timed(lambda: cold_datasets(path))
    assert ours["sentence"] == peer["sentence"] and ours["label"] == peer["label"], "the two loaders disagree"
    print(f"SST-2 train, {len(ours):,} rows, identical in both")
    print(f"tlcourse.data.load_sst2 (sha256 + parse): {t_ours * 1000:8.1f} ms")
    print(f"datasets.load_dataset('csv')            : {t_peer * 1000:8.1f} ms")
    print(f"ratio (datasets / tlcourse)             : {t_peer / t_ours:8.2f}x")


if __name__ == "__main__":
    main()
