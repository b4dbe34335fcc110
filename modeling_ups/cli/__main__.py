"""``python -m modeling_ups.cli`` runs the ``ups`` command (for checkouts without ``pip install``)."""

from . import run

run()
