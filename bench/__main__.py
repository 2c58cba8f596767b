"""Run every benchmark: ``make bench``."""

from bench import primitives

if __name__ == "__main__":
    primitives.main()
