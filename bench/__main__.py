"""Run the benchmarks: ``make bench`` runs them all, ``python -m bench NAME...`` only the named ones.

A benchmark is a module of this package with a ``main()`` that prints its figures beside a baseline
measured in the same run.
"""

import importlib
import pkgutil
import sys

import bench


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def run(names: list[str]) -> None:
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        module.main()
        print()


if __name__ == "__main__":
    wanted = sys.argv[1:] or available()
    unknown = sorted(set(wanted) - set(available()))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
    run(wanted)
