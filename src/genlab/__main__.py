"""``python -m genlab`` (and ``torchrun -m genlab train ...``) runs the CLI."""

import sys

from .cli import main

sys.exit(main())
