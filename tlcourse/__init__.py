"""tlcourse: the package behind the transfer-learning workbook.

Chapters import what they teach from here: the plumbing, ``tlcourse.setup`` (seed, profile, device),
``tlcourse.data`` (offline-first datasets), ``tlcourse.hub`` (pretrained models and the artefact
cache), ``tlcourse.train`` and ``tlcourse.viz`` (one loop and its plots); one module per method
(``tlcourse.bow``, ``tlcourse.embeddings``, ``tlcourse.elmo``, ``tlcourse.mlm``, ...); one module
per chapter with its ``CONFIGS`` and experiment protocol (``tlcourse.chapters.ch01_transfer``, ...);
and ``tlcourse.checks`` (exercise self-checks).
"""

__version__ = "0.1.0"

from .config import ConfigError, Run, setup  # noqa: E402

__all__ = ["ConfigError", "Run", "setup", "__version__"]
