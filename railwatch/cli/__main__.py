"""``python -m railwatch.cli``."""

from railwatch.cli import main

main()
