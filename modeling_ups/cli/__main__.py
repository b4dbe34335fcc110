"""``python -m modeling_ups.cli`` runs the ``ups`` command (for checkouts without ``pip install``)."""

import sys

from . import main

sys.exit(main())
