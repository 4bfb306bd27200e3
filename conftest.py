"""Repository-wide pytest set-up, for the unit tests and for nbval's notebook runs alike.

* Every Python subprocess (notebook kernels included) gets ``tests/netguard`` on its path, whose
  ``sitecustomize`` refuses non-loopback connections; the pytest process itself is guarded by
  pytest-socket (``--allow-hosts`` in the Makefile).
* Offline switches for the Hugging Face libraries, and ``TLCOURSE_DATA`` defaulting to the course's
  ``../shared/data`` beside the repository when it is not set.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
GUARD = ROOT / "tests" / "netguard"

os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
if not os.environ.get("TLCOURSE_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["TLCOURSE_DATA"] = str(ROOT.parent / "shared" / "data")
