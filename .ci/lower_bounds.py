"""Write pip constraints that pin every dependency declared in setup.py to its declared lower bound.

    python .ci/lower_bounds.py [EXTRA ...] > minimum.txt

The requirements are read from setup.py itself (its `setup()` call is intercepted, nothing is built), so the
"minimum" CI job cannot drift from what setup.py declares. `install_requires` plus the named extras (default: all
of them) are read; each must have a lower bound (`>=X`, `==X` or `~=X`), and `name==X` is written for it. A
requirement without one, or with only an exclusive bound (`>X`), is an error: the minimum job could not test it.
"""

import runpy
import sys
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.version import Version
except ImportError:  # a bare interpreter: pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

SETUP_PY = Path(__file__).resolve().parents[1] / "setup.py"


def declared_requirements(extras=None):
    """The requirement strings of install_requires and the given extras (None: all extras), in setup.py order."""
    import setuptools

    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(str(SETUP_PY), run_name="__main__")
    finally:
        setuptools.setup = original
    if not captured:
        raise SystemExit(f"{SETUP_PY} did not call setuptools.setup()")
    extras_require = captured.get("extras_require") or {}
    unknown = sorted(set(extras or ()) - set(extras_require))
    if unknown:
        raise SystemExit(f"setup.py declares no extra {unknown} (it has {sorted(extras_require)})")
    names = sorted(extras_require) if extras is None else extras
    requirements = list(captured.get("install_requires") or [])
    for name in names:
        requirements.extend(extras_require[name])
    return requirements


def lower_bound(requirement: Requirement) -> Version:
    bounds = []
    for spec in requirement.specifier:
        if spec.operator in (">=", "==", "~=", "===") and not spec.version.endswith(".*"):
            bounds.append(Version(spec.version))
        elif spec.operator == ">":
            raise SystemExit(f"{requirement}: an exclusive lower bound has no lowest version to test; use >=")
    if not bounds:
        raise SystemExit(f"{requirement}: no lower bound declared in setup.py; add one (>=X) that CI's minimum job proves")
    bound = max(bounds)
    if not requirement.specifier.contains(bound, prereleases=True):
        raise SystemExit(f"{requirement}: its lower bound {bound} does not satisfy its own specifier")
    return bound


def constraints(extras=None):
    """{normalised name: lowest declared version}, in first-seen order."""
    pins = {}
    for line in declared_requirements(extras):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = requirement.name.lower().replace("_", "-").replace(".", "-")
        bound = lower_bound(requirement)
        pins[name] = max(bound, pins.get(name, bound))
    return pins


def main(argv):
    for name, version in constraints(argv or None).items():
        print(f"{name}=={version}")


if __name__ == "__main__":
    main(sys.argv[1:])
