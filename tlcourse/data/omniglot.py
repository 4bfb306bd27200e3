"""Omniglot (Lake, Salakhutdinov & Tenenbaum 2015, Science): handwritten characters for few-shot
learning.

Images are read with Pillow straight from the zips of the data directory into 105x105 boolean arrays
(``datasets.Array2D``), ``True`` where there is ink: the authors' own demo code inverts the PNGs
(white background = 1) the same way. Local only: the minimal background sets and the one-shot runs
used here are not on the hub.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import datasets
import numpy as np
from datasets import Array2D, ClassLabel, Features, Value
from PIL import Image

from ._hub import HubSource, fetch
from ._paths import DataFormatError, PathLike, check_name, locate
from ._read import build, memoised

IMAGE_SIZE = 105
OMNIGLOT_PARTS: dict[str, str] = {
    "background_small1": "omniglot/images_background_small1.zip",
    "background_small2": "omniglot/images_background_small2.zip",
    "one_shot_runs": "omniglot/all_runs.zip",
}
OMNIGLOT_HUB = HubSource(
    None, note="the minimal background sets and the 20 one-shot runs have no hub copy"
)
_IMAGE = Array2D((IMAGE_SIZE, IMAGE_SIZE), "bool")


def _bad(path: Path, member: str, problem: str) -> DataFormatError:
    return DataFormatError(
        f"{path}, member {member}: {problem}. Re-copy the zip from the course's shared data "
        "folder or from github.com/brendenlake/omniglot (see omniglot/SOURCE.md)."
    )


def _ink(zf: zipfile.ZipFile, path: Path, member: str) -> np.ndarray:
    """One PNG as a 105x105 bool array, ``True`` on the strokes."""
    with Image.open(io.BytesIO(zf.read(member))) as image:
        pixels = np.asarray(image.convert("L"))
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise _bad(
            path, member, f"image of shape {pixels.shape}, expected {(IMAGE_SIZE, IMAGE_SIZE)}"
        )
    return pixels < 128


@memoised
def _read_background(path: Path) -> datasets.Dataset:
    with zipfile.ZipFile(path) as zf:
        members = sorted(name for name in zf.namelist() if name.endswith(".png"))
        keys = []
        for member in members:
            match = re.fullmatch(r"[^/]+/([^/]+)/(character\d+)/\d+_(\d+)\.png", member)
            if match is None:
                raise _bad(path, member, "expected <set>/<alphabet>/characterNN/NNNN_DD.png")
            keys.append(match.groups())
        images = np.stack([_ink(zf, path, member) for member in members])
    classes = sorted({f"{alphabet}/{character}" for alphabet, character, _ in keys})
    index = {name: i for i, name in enumerate(classes)}
    columns = {
        "image": images,
        "alphabet": [alphabet for alphabet, _, _ in keys],
        "character": [character for _, character, _ in keys],
        "drawer": [int(drawer) for _, _, drawer in keys],
        "label": [index[f"{alphabet}/{character}"] for alphabet, character, _ in keys],
        "path": members,
    }
    features = Features(
        {
            "image": _IMAGE,
            "alphabet": Value("string"),
            "character": Value("string"),
            "drawer": Value("int32"),
            "label": ClassLabel(names=classes),
            "path": Value("string"),
        }
    )
    return build(columns, features)


@memoised
def _read_runs(path: Path) -> datasets.Dataset:
    columns: dict[str, list] = {
        "run": [],
        "split": [],
        "item": [],
        "label": [],
        "image": [],
        "path": [],
    }
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        runs = sorted(name.split("/")[0] for name in names if name.endswith("/class_labels.txt"))
        for run in runs:
            answers = {}
            for line in zf.read(f"{run}/class_labels.txt").decode("ascii").split("\n"):
                if not line.strip():
                    continue
                match = re.fullmatch(
                    rf"({run}/test/item\d+\.png) {run}/training/class(\d+)\.png", line.strip()
                )
                if match is None:
                    raise _bad(
                        path, f"{run}/class_labels.txt", f"unexpected answer line {line[:100]!r}"
                    )
                answers[match.group(1)] = int(match.group(2))
            for split, stem in (("training", "class"), ("test", "item")):
                members = sorted(
                    n for n in names if re.fullmatch(rf"{run}/{split}/{stem}\d+\.png", n)
                )
                if len(members) != 20 or (split == "test" and set(members) != set(answers)):
                    raise _bad(
                        path,
                        f"{run}/{split}/",
                        "expected 20 images (and an answer for each test item)",
                    )
                for member in members:
                    item = int(member[-6:-4])
                    columns["run"].append(int(run[3:]))
                    columns["split"].append(split)
                    columns["item"].append(item)
                    columns["label"].append((item if split == "training" else answers[member]) - 1)
                    columns["image"].append(_ink(zf, path, member))
                    columns["path"].append(member)
    columns["image"] = np.stack(columns["image"])
    features = Features(
        {
            "run": Value("int32"),
            "split": Value("string"),
            "item": Value("int32"),
            "label": Value("int32"),
            "image": _IMAGE,
            "path": Value("string"),
        }
    )
    return build(columns, features)


def load_omniglot(part: str, data_dir: PathLike | None = None) -> datasets.Dataset:
    """Omniglot images (Lake et al. 2015) as one ``Dataset``; ``image`` is a 105x105 bool array,
    True = ink.

    - ``background_small1`` (5 alphabets, 136 characters, 2,720 images) and ``background_small2``
      (5 alphabets, 156 characters, 3,120 images), the authors' minimal background sets for
      meta-training: columns ``image``, ``alphabet``, ``character`` (``character01`` ...),
      ``drawer`` (1-20), ``label`` (ClassLabel ``alphabet/character``) and ``path`` (inside the
      zip).
    - ``one_shot_runs``: the 20 official 20-way one-shot runs (800 images): columns ``run`` (1-20),
      ``split`` (``training``: the 20 class exemplars; ``test``: the 20 queries), ``item`` (the
      file's number), ``label`` (0-19: the exemplar's class, or for a query its answer from
      ``class_labels.txt``), ``image``, ``path``. One episode is
      ``ds.filter(lambda r: r["run"] == 1)``.
    """
    check_name("Omniglot part", part, OMNIGLOT_PARTS)
    paths = locate([OMNIGLOT_PARTS[part]], data_dir)
    if paths is None:
        fetch(
            f"Omniglot {part}", [OMNIGLOT_PARTS[part]], OMNIGLOT_HUB, data_dir
        )  # raises: no hub copy
    return _read_runs(paths[0]) if part == "one_shot_runs" else _read_background(paths[0])
