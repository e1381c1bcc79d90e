"""`python -m agent` is `hb2r`."""

import sys

from agent.cli import main

sys.exit(main())
