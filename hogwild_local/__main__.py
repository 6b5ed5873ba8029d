"""`python -m hogwild_local` is the `hogwild` command."""

from .cli import main

main()
