"""`python -m powdersolve` runs the CLI."""

import sys

from powdersolve.cli import main

sys.exit(main())
