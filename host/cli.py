"""The ``heraldry`` command. Each room registers its own subcommands here."""

import argparse
import sys

__all__ = ["main"]


def _subcommand_modules():
    # Imported lazily so that `heraldry --help` stays fast and a missing optional
    # dependency only breaks the subcommand that needs it.
    from ..sim import demo, model_cli, virtual_board
    from . import cli_device
    from ..boards import cli as boards_cli
    return [demo, virtual_board, model_cli, cli_device, boards_cli]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="heraldry", description="Real-time FPGA heralding controller for quantum networks")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _subcommand_modules():
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
