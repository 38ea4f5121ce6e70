"""``python -m odebench``: the command line."""

import sys

from odebench.cli import main

sys.exit(main())
