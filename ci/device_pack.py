"""Pack what chapters need for a ``gpu``-profile run on a borrowed GPU machine, into ``.device/``.

That machine has PyTorch, transformers, peft, pandas and matplotlib but no Jupyter, no ``datasets``
and no network, and at most 64 MiB travel with the working tree. So this packs, for the chapters
named: the course data bundle's archives they read (from ``make data-bundle``), served there on
loopback as on Colab; MiniLM as float16 (half the bytes; checked here to give the same sentence
embeddings to 1e-3 and restored to float32 there); the wheels of the pinned packages the machine
lacks (ci/constraints.txt); and ``.device/run.sh``, which runs each chapter with
``ci/run_cells.py`` and leaves a log and a JSON summary (times, claim checks) per chapter in $OUT.

    python ci/device_pack.py 06 08          # then, on the machine (the device tool):
    bash .device/run.sh 06 08               # with carry=[".device"]

The 20-million-word pretraining corpus (40 MB packed) and MiniLM (44 MB as float16) do not fit in
one call together: chapters 3, 4 and 10 need both, chapter 2 needs the corpus and gensim (27 MB).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60 * 2**20  # of the 64 MiB that travel: the repository itself is about 3 MB

# The data bundle's archives each chapter reads (its Runtime box's "Data" line), whether it loads
# MiniLM, and the PyPI packages it needs that the machine lacks (beyond datasets and pooch).
CHAPTERS = {
    "01": (["sst2", "ag_news_subset", "sentiment_labelled_sentences"], True, []),
    "02": (
        ["gutenberg_selection", "wikitext2", "pretrain_corpus", "word_embedding_eval", "sst2"],
        False,
        ["gensim", "smart-open"],
    ),
    "03": (
        ["gutenberg_selection", "wikitext2", "pretrain_corpus", "ud_treebanks", "sst2"],
        True,
        [],
    ),
    "04": (
        ["gutenberg_selection", "wikitext2", "pretrain_corpus", "sst2", "glue_rte", "ud_treebanks"],
        True,
        [],
    ),
    "05": (
        ["gutenberg_selection", "wikitext2", "sst2", "glue_rte", "ag_news_subset"]
        + ["sentiment_labelled_sentences"],
        True,
        [],
    ),
    "06": (["sst2", "ag_news_subset"], True, []),
    "07": (["omniglot", "ag_news_subset"], True, []),
    "08": (["ag_news_subset"], True, []),
    "09": (["sst2", "ag_news_subset"], True, []),
    "10": (
        ["omniglot", "gutenberg_selection", "wikitext2", "pretrain_corpus", "ag_news_subset"],
        True,
        [],
    ),
    "11": (["sentiment_labelled_sentences", "sst2", "ag_news_subset"], True, []),
}
WHEELS = ["datasets", "dill", "multiprocess", "pooch", "platformdirs"]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]

RUN_SH = r"""#!/usr/bin/env bash
# On the GPU machine, from the repository root: bash .device/run.sh 06 08
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 TLCOURSE_PROFILE=gpu HF_HUB_OFFLINE=1
unset TLCOURSE_DATA  # the chapters fetch their data from the bundle served below, as on Colab
export TLCOURSE_CACHE=/tmp/tlcourse-cache TLCOURSE_DATA_CACHE=/tmp/data
if [ -d .device/minilm16 ]; then  # MiniLM back to float32, the same tensor names
  cp -r .device/minilm16 /tmp/minilm
  python3 -c "from safetensors.torch import load_file as L, save_file as S
f = '/tmp/minilm/model.safetensors'; S({k: v.float() for k, v in L(f).items()}, f)"
  export TLCOURSE_MODEL_MINILM=/tmp/minilm
fi
python3 -m tlcourse.data.bundle serve .device/data --port 8765 & sleep 2
export TLCOURSE_DATA_URL=http://127.0.0.1:8765/
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for n in "$@"; do
  nb=$(ls notebooks/$n-*.ipynb)
  python3 ci/run_cells.py "$nb" --json "$OUT/ch$n.json" > "$OUT/ch$n.log" 2>&1
  tail -n 4 "$OUT/ch$n.log"
done
"""


def pins() -> dict[str, str]:
    text = (ROOT / "ci" / "constraints.txt").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def pack_minilm(out: Path) -> None:
    """MiniLM's folder with its weights as float16 (the same tensor names), after a check that
    rounding them moves its sentence embeddings by less than 1e-3."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel, AutoTokenizer

    from tlcourse import data, hub

    path = Path(hub.resolve("minilm"))
    model, tokenizer = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    half = AutoModel.from_pretrained(path).half().float().eval()
    batch = tokenizer(data.load("sst2")["validation"]["sentence"][:64], padding=True,
                      return_tensors="pt")  # fmt: skip
    mask = batch["attention_mask"].unsqueeze(-1).float()

    def embed(m):  # MiniLM's sentence embedding: mean pooling, unit length (what chapters use)
        pooled = (m(**batch).last_hidden_state * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    with torch.no_grad():
        gap = (embed(model) - embed(half)).abs().max()
    print(f"MiniLM float16: largest change of a sentence embedding on 64 SST-2 sentences {gap:.1e}")
    if gap > 1e-3:
        sys.exit("MiniLM in float16 differs by more than 1e-3: carry it in float32 instead")
    shutil.copytree(path, out, ignore=shutil.ignore_patterns("model.safetensors", "*.md"))
    weights = load_file(path / "model.safetensors")
    save_file({k: v.half() for k, v in weights.items()}, out / "model.safetensors")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", choices=sorted(CHAPTERS))
    parser.add_argument("--bundle", type=Path, default=ROOT / "_build" / "data-bundle")
    parser.add_argument("--out", type=Path, default=ROOT / ".device")
    args = parser.parse_args(argv)
    if not (args.bundle / "registry.txt").is_file():
        sys.exit(f"no data bundle in {args.bundle}: run `make data-bundle` first")
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "data").mkdir(parents=True)
    archives = sorted({a for n in args.chapters for a in CHAPTERS[n][0]})
    for name in archives:
        shutil.copy(args.bundle / f"{name}.tar.gz", args.out / "data")
    shutil.copy(args.bundle / "registry.txt", args.out / "data")
    if any(CHAPTERS[n][1] for n in args.chapters):
        pack_minilm(args.out / "minilm16")
    pinned = pins()
    wanted = WHEELS + sorted({w for n in args.chapters for w in CHAPTERS[n][2]})
    specs = [f"{w}=={pinned[w]}" if w in pinned else w for w in wanted]
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--implementation", "cp", *platforms,
         "-d", str(args.out / "whl"), *specs],
        check=True,
    )  # fmt: skip
    (args.out / "run.sh").write_text(RUN_SH)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {size / 2**20:.1f} MiB for chapters {', '.join(args.chapters)}")
    if size > LIMIT:
        sys.exit(f"more than {LIMIT / 2**20:.0f} MiB: pack fewer chapters per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
