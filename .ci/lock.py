"""Print requirements.lock: every distribution that `mmsearch[dev]` pulls in, pinned to the
version installed in this environment (run by `make lock`, after `pip install -e .[dev]`).

Unlike `pip freeze`, it walks the dependency tree, so packages installed by hand are left out;
local version labels are dropped (torch 2.13.0+cpu is locked as ==2.13.0, which the CPU wheel
satisfies) so that pip-audit can look each pin up on PyPI.
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = "mmsearch"


def pinned_closure(root: str, extras: frozenset[str]) -> dict[str, str]:
    """Canonical name to installed public version, for `root[extras]` and all it requires."""
    pins: dict[str, str] = {}
    todo, done = [(root, extras)], set()
    while todo:
        name, wanted = todo.pop()
        if (key := (canonicalize_name(name), wanted)) in done:
            continue
        done.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"{name} is required but not installed: run `pip install -e .[dev]` first")
        pins[canonicalize_name(dist.metadata["Name"])] = Version(dist.version).public
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in wanted or {""}):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    pins.pop(root)
    return pins


def main() -> None:
    pins = pinned_closure(ROOT, frozenset({"dev"}))
    python = ".".join(map(str, sys.version_info[:2]))
    print(f"# mmsearch[dev] resolved for Python {python} on Linux; written by `make lock`.")
    print("# `make install` installs with these as constraints; `make audit` checks them.")
    for name, version in sorted(pins.items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
