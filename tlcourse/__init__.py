"""tlcourse: the package behind the transfer-learning workbook.

Chapters import what they teach from here: ``tlcourse.setup`` (seed, profile, device),
``tlcourse.data`` (offline-first datasets), ``tlcourse.hub`` (pretrained models and the artefact
cache), ``tlcourse.train`` and ``tlcourse.viz`` (one loop and its plots), ``tlcourse.checks``
(exercise self-checks), and one module per method (``tlcourse.transfer``, ...).
"""
__version__ = "0.1.0"

from .config import ConfigError, Run, setup  # noqa: E402

__all__ = ["ConfigError", "Run", "setup", "__version__"]
