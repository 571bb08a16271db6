"""Thin entry point: `python cli.py ...` is the same as the `chargeshare` console script."""

from chargeshare.cli.app import main

if __name__ == "__main__":
    main()
