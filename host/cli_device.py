"""``heraldry info URL`` (identify a device) and ``heraldry regmap`` (print the register map)."""

__all__ = ["add_parser"]


def add_parser(subparsers):
    info = subparsers.add_parser(
        "info", help="identify a device and show its status",
        description="Connect to URL (serial:///dev/ttyUSB1?baud=3000000, tcp://HOST:PORT or "
                    "sim://), read its identification block, status and link counters.")
    info.add_argument("url")
    info.set_defaults(handler=_info)
    regmap = subparsers.add_parser(
        "regmap", help="print the register map (Markdown)",
        description="Print the register map of a SoC built with the given parameters.")
    regmap.add_argument("--channels", type=int, default=2)
    regmap.add_argument("--windows", type=int, default=2)
    regmap.add_argument("--outputs", type=int, default=4)
    regmap.add_argument("--clk", type=float, default=100e6, help="clock frequency in Hz")
    regmap.set_defaults(handler=_regmap)


def _info(args):
    from .controller import Controller
    with Controller.open(args.url) as ctl:
        print(ctl.device.summary())
        print(ctl.status())
        for name, value in ctl.link_stats().items():
            print(f"link.{name} = {value}")
    return 0


def _regmap(args):
    from ..gateware.layouts import CoreParameters
    from ..gateware.regmap import RegisterMap, SocParameters
    core = CoreParameters(n_channels=args.channels, n_windows=args.windows,
                          n_outputs=args.outputs)
    print(RegisterMap(SocParameters(core=core, clk_freq=int(args.clk))).markdown())
    return 0
