"""``python -m containerkit``: the command line (same as the ``containerkit`` script)."""

from containerkit.cli.main import run

run()
