"""The native front end's signal table (_native/launcher.c) against Python's: a name or
number it takes itself must mean what ``containerkit.cli.lifecycle.parse_signal`` says.
The table is read from the C source; the forms C accepts for it (any case, with or
without SIG, numbers 1..64) are checked here to be ones Python reads the same way.
That C itself parses them so is tested on the built binary in test_cli_state_fast.py."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from containerkit.cli.lifecycle import parse_signal

SOURCE = Path(__file__).resolve().parents[2] / "_native" / "launcher.c"


def test_every_name_in_the_c_table_is_pythons() -> None:
    text = SOURCE.read_text()
    table = text[text.index("SIGNALS[] = {"):text.index("};", text.index("SIGNALS[] = {"))]
    entries = re.findall(r'\{"([A-Z0-9]+)", (\d+)\}', table)
    assert len(entries) >= 30
    for name, number in entries:
        assert getattr(signal, f"SIG{name}") == int(number), name
        for form in (name, f"SIG{name}", name.lower(), f"sig{name.lower()}"):
            assert parse_signal(form) == int(number), form
    # the numbers C takes: 1..64, as Python's
    assert parse_signal("64") == 64 == int(signal.SIGRTMAX)
