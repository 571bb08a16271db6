"""`python -m chargeshare ...`: the same as the `chargeshare` console script."""

from chargeshare.cli.app import main

main()
