"""``python -m containerkit``: the command line (same as the ``containerkit`` script)."""

import sys

from containerkit.cli.main import main

sys.exit(main())
