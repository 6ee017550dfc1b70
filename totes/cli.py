"""`totes`: the one entry point for people and the Makefile (see spec/pipeline.md)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, MutableMapping, Sequence

from runtime import logs

Command = Callable[[argparse.Namespace], int]


def _stack():
    from infra.local.stack import LocalStack

    return LocalStack.from_env()


def cmd_up(args: argparse.Namespace) -> int:
    env = _stack().up()
    print(f"local stack up in {env['TOTES_HOME']}", file=sys.stderr)
    print(f"  totesys:   {env['TOTESYS_DSN']}", file=sys.stderr)
    print(f"  warehouse: {env['WAREHOUSE_DSN']}", file=sys.stderr)
    print(f"  AWS (S3, SNS, Glue): {env['AWS_ENDPOINT_URL']}", file=sys.stderr)
    print('  eval "$(totes env)" to use them from this shell', file=sys.stderr)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _stack().down(purge=args.purge)
    print("local stack stopped" + (" and its data deleted" if args.purge else ""), file=sys.stderr)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    env = _stack().env()
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f'export PATH={shlex.quote(env["PG_BIN"])}:"$PATH"')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="totes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="start the local stack (idempotent)").set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the local stack, keeping its data")
    down.add_argument("--purge", action="store_true", help="also delete the stack's data")
    down.set_defaults(func=cmd_down)
    sub.add_parser("env", help="print export lines for the local stack").set_defaults(func=cmd_env)
    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Subcommands owned by other modules register themselves here."""
    from totes import commands

    return commands.registrars()


def default_to_local_stack(environ: MutableMapping[str, str]) -> None:
    """Fill the variables the environment does not set from the local stack, when one has
    been created under TOTES_HOME: `totes up && totes seed && totes run` works without
    `eval "$(totes env)"`. Variables already set (a real database, AWS) always win."""
    stack = _stack()
    if not stack.state_file.exists():
        return
    for name, value in stack.env().items():
        if name != "PG_BIN":
            environ.setdefault(name, value)


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    args = build_parser().parse_args(argv)
    if args.command not in ("up", "down", "env"):
        default_to_local_stack(os.environ)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # one place turns any failure into a clear message and exit code
        from infra.local.stack import StackError

        if isinstance(err, StackError):
            print(f"totes {args.command}: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
