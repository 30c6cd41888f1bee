"""`python -m tuneloop` is the same as the `tuneloop` console script."""

import sys

from tuneloop.cli import main

sys.exit(main())
