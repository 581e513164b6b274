"""A small command-line parser with the subset of argparse's API the verbs use.

Why not argparse: importing it (with gettext) and building a parser costs ~1.5 ms and its
help formatter pulls in shutil (another ~1.5 ms); ``state`` itself takes 0.4 ms. The
grammar is runc's (urfave/cli + Go's flag package):

* ``--name value``, ``--name=value``, ``-n value``, ``-n=value``; Go's single-dash long
  form ``-name`` too; ``--`` ends the flags;
* flags may come before or after positionals, except after the start of a
  ``nargs=REMAINDER`` positional (``exec ID cmd -x`` keeps ``-x`` for ``cmd``);
* every error is one line (raised as ``ParseError``); ``-h``/``--help`` prints the help
  and raises ``SystemExit(0)``.
"""

from __future__ import annotations

import sys

# types.SimpleNamespace without importing types (~0.2 ms of every CLI call): it is the
# type of sys.implementation
SimpleNamespace = type(sys.implementation)

TYPE_CHECKING = False  # typing is not imported at run time: it costs ~2 ms of start-up
if TYPE_CHECKING:
    from typing import Any

REMAINDER = "..."
OPTIONAL = "?"


class ParseError(Exception):
    pass


class _Opt:
    def __init__(self, names: tuple[str, ...], kw: dict[str, Any]) -> None:
        self.names = names
        self.action = kw.get("action")          # None (takes a value), store_true, append
        long = [n for n in names if n.startswith("--")]
        self.dest = kw.get("dest") or (long[0] if long else names[0]).lstrip("-").replace(
            "-", "_")
        self.default = kw.get("default", [] if self.action == "append" else
                              False if self.action == "store_true" else None)
        self.type = kw.get("type")
        self.choices = kw.get("choices")
        self.help = kw.get("help", "")
        self.metavar = kw.get("metavar") or "value"

    @property
    def takes_value(self) -> bool:
        return self.action != "store_true"


class _Pos:
    def __init__(self, name: str, kw: dict[str, Any]) -> None:
        self.dest = name
        self.nargs = kw.get("nargs")
        self.default = kw.get("default", [] if self.nargs == REMAINDER else None)
        self.metavar = kw.get("metavar") or name
        self.help = kw.get("help", "")


class Parser:
    def __init__(self, prog: str, description: str = "") -> None:
        self.prog = prog                          # "containerkit create": help
        self.verb = prog.rsplit(" ", 1)[-1]       # "create": error messages
        self.description = description
        self.opts: dict[str, _Opt] = {}
        self.order: list[_Opt] = []
        self.positionals: list[_Pos] = []
        self.defaults: dict[str, Any] = {}
        self.add_argument("-h", "--help", action="store_true", help="show help")

    # -- declaring -------------------------------------------------------------------------
    def add_argument(self, *names: str, **kw: Any) -> None:
        if names[0].startswith("-"):
            opt = _Opt(names, kw)
            self.order.append(opt)
            for name in names:
                self.opts[name] = opt
        else:
            self.positionals.append(_Pos(names[0], kw))

    def set_defaults(self, **kw: Any) -> None:
        self.defaults.update(kw)

    # -- parsing ---------------------------------------------------------------------------
    def _lookup(self, name: str) -> _Opt:
        opt = self.opts.get(name)
        if opt is None and not name.startswith("--") and len(name) > 2:
            opt = self.opts.get("-" + name)          # Go: -bundle == --bundle
        if opt is None:
            raise ParseError(f"{self.verb}: flag provided but not defined: {name}")
        return opt

    def _convert(self, opt: _Opt, name: str, value: str) -> Any:
        if opt.choices is not None and value not in opt.choices:
            raise ParseError(f"{self.verb}: invalid value {value!r} for {name}: use "
                             + " or ".join(opt.choices))
        if opt.type is not None:
            try:
                return opt.type(value)
            except ValueError:
                raise ParseError(f"{self.verb}: invalid value {value!r} for {name}") from None
        return value

    def parse_args(self, argv: list[str]) -> SimpleNamespace:
        ns = SimpleNamespace(**self.defaults)
        for opt in self.order:
            setattr(ns, opt.dest, list(opt.default) if isinstance(opt.default, list)
                    else opt.default)
        values: list[str] = []
        remainder: list[str] | None = None
        fixed = [p for p in self.positionals if p.nargs != REMAINDER]
        has_remainder = len(fixed) != len(self.positionals)
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if remainder is not None:
                remainder.append(arg)
                continue
            if arg == "--":
                for rest in argv[i:]:
                    if has_remainder and len(values) >= len(fixed):
                        remainder = remainder or []
                        remainder.append(rest)
                    else:
                        values.append(rest)
                break
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                opt = self._lookup(name)
                if not opt.takes_value:
                    if eq:
                        raise ParseError(f"{self.verb}: {name} takes no value")
                    setattr(ns, opt.dest, True)
                    continue
                if not eq:
                    if i >= len(argv):
                        raise ParseError(f"{self.verb}: flag needs an argument: {name}")
                    value = argv[i]
                    i += 1
                converted = self._convert(opt, name, value)
                if opt.action == "append":
                    getattr(ns, opt.dest).append(converted)
                else:
                    setattr(ns, opt.dest, converted)
                continue
            values.append(arg)
            if has_remainder and len(values) == len(fixed):
                remainder = []
        if ns.help:
            sys.stdout.write(self.format_help())
            raise SystemExit(0)
        del ns.help
        self._assign(ns, values, remainder)
        return ns

    def _assign(self, ns: SimpleNamespace, values: list[str], remainder: list[str] | None
                ) -> None:
        for pos in self.positionals:
            if pos.nargs == REMAINDER:
                setattr(ns, pos.dest, remainder or [])
            elif values:
                setattr(ns, pos.dest, values.pop(0))
            elif pos.nargs == OPTIONAL:
                setattr(ns, pos.dest, pos.default)
            else:
                raise ParseError(f"{self.verb}: missing argument <{pos.metavar}>")
        if values:
            raise ParseError(f"{self.verb}: unexpected argument {values[0]!r}")

    # -- help ------------------------------------------------------------------------------
    def format_help(self) -> str:
        usage = [f"usage: {self.prog}"]
        if len(self.order) > 1:
            usage.append("[options]")
        for pos in self.positionals:
            if pos.nargs == REMAINDER:
                usage.append(f"[{pos.metavar}...]")
            elif pos.nargs == OPTIONAL:
                usage.append(f"[{pos.metavar}]")
            else:
                usage.append(f"<{pos.metavar}>")
        lines = [" ".join(usage), ""]
        if self.description:
            lines += [self.description, ""]
        lines.append("options:")
        rows = []
        for opt in self.order:
            flags = ", ".join(sorted(opt.names, key=len, reverse=True))
            rows.append((f"{flags} {opt.metavar}" if opt.takes_value else flags, opt.help))
        width = max(len(r[0]) for r in rows) + 2
        lines += [f"  {left.ljust(width)}{text}".rstrip() for left, text in rows]
        return "\n".join(lines) + "\n"

    def print_help(self) -> None:
        sys.stdout.write(self.format_help())
