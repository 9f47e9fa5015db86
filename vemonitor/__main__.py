"""``python -m vemonitor`` runs the ``vemonitor`` command."""

from vemonitor.cli import main

main()
