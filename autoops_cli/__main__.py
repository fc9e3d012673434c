"""``python -m autoops_cli``."""

from autoops_cli.main import main

main()
