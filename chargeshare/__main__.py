"""`python -m chargeshare ...` is the `chargeshare` console script."""

from chargeshare.cli.app import main

main()
