"""`python -m corit_hf.cli`: the same as the `corit` console script."""

import sys

from .main import main


sys.exit(main())
