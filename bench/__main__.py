"""Run the benchmarks: ``make bench`` runs them all, ``python -m bench NAME...`` only the named ones, and
``python -m bench NAME --flag ...`` one of them with its own flags.

A benchmark is a module of this package with a ``main()`` that prints its figures beside a baseline
measured in the same run (``main(argv)`` takes the flags). The chaos run (`bench.chaos`) is no performance
benchmark and takes minutes: it runs only when named (``make chaos``).
"""

import importlib
import pkgutil
import sys

import bench

ONLY_WHEN_NAMED = {"chaos"}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def run(names: list[str], flags: list[str]) -> None:
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        module.main(flags) if flags else module.main()
        print()


if __name__ == "__main__":
    args = sys.argv[1:]
    first_flag = next((i for i, arg in enumerate(args) if arg.startswith("-")), len(args))
    wanted, flags = args[:first_flag], args[first_flag:]
    if flags and len(wanted) != 1:
        sys.exit("flags go to one benchmark: python -m bench NAME --flag ...")
    wanted = wanted or [name for name in available() if name not in ONLY_WHEN_NAMED]
    unknown = sorted(set(wanted) - set(available()))
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
    run(wanted, flags)
