"""Are the installed tlcourse's requirements met in this environment? (`make install` in a conda
environment, where conda owns the packages and pip installs only the course itself, with --no-deps.)

    python ci/check_requirements.py [EXTRA ...]      e.g.  python ci/check_requirements.py book test

Prints each unmet requirement and the one command that installs them all, and exits 1; exits 0 when
everything is met. Only the standard library and `packaging` (pip's own copy when it is missing).
"""

from __future__ import annotations

import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # pragma: no cover - a bare environment: pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version


def unmet(extras: list[str], dist: str = "tlcourse") -> list[str]:
    """The requirements of ``dist`` (with ``extras``) that no installed distribution satisfies."""
    missing, seen = [], set()
    todo = [(dist, tuple(extras))]
    while todo:
        name, wanted = todo.pop()
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted or ("",)):
                continue
            if req.name.lower() == dist:  # tlcourse[all] names tlcourse's own extras
                todo.append((dist, tuple(req.extras)))
                continue
            if (req.name.lower(), str(req.specifier)) in seen:
                continue
            seen.add((req.name.lower(), str(req.specifier)))
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                missing.append(f"{req.name}{req.specifier}")
                continue
            if req.specifier and not req.specifier.contains(Version(version), prereleases=True):
                missing.append(f"{req.name}{req.specifier} (installed: {version})")
    return missing


def main(argv: list[str]) -> int:
    try:
        missing = unmet(argv)
    except metadata.PackageNotFoundError:
        print("tlcourse is not installed: pip install --no-deps -e .", file=sys.stderr)
        return 1
    if not missing:
        print("tlcourse: every requirement is met by this environment's packages")
        return 0
    print("tlcourse needs packages this environment lacks (nothing was changed):", file=sys.stderr)
    for req in missing:
        print(f"  {req}", file=sys.stderr)
    specs = " ".join(f"'{m.split(' (')[0]}'" for m in missing)
    print(
        f"Install them with conda (conda install -c conda-forge ...) or with pip:\n"
        f"  python -m pip install {specs}\n"
        f"or create the course's environment: conda env create -f environment.yml",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
