"""``python -m geopurify`` (also what ``torchrun -m geopurify train ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
