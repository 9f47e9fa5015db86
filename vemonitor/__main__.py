"""``python -m vemonitor`` runs the ``vemonitor`` command."""

from vemonitor.launch import main

main()
