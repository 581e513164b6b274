"""``python -m containerkit``: the command line (same as the ``containerkit`` script)."""

import gc

gc.set_threshold(50000, 20, 20)  # as the launcher does (containerkit/cli/launcher.py)

from containerkit.cli.main import run  # noqa: E402 - after the GC setting

run()
