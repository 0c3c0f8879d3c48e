"""ULX3S with an ECP5 LFE5U-85F: core clock from the 25 MHz oscillator, UART at 3 Mbaud to
the FT231X.

Header J1: GPn pins are inputs, GNn pins outputs.
"""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from ..gateware.layouts import CoreParameters
from .board import Board, Pin
from .pll import ECP5PLL

__all__ = ["ULX3S_85F"]

_J1 = ("gpio", 0)

ULX3S_85F = Board(
    name="ulx3s-85f",
    title="ULX3S (ECP5 LFE5U-85F)",
    platform=ULX3S_85F_Platform,
    clk_freq=125_000_000,
    min_clk_freq=125_000_000,
    baud=3_000_000,
    core=CoreParameters(n_channels=2, n_windows=2, n_outputs=4),
    fifo_depth=512,
    pll=ECP5PLL,
    io_attrs={"IO_TYPE": "LVCMOS33"},
    pins=(
        Pin("clicks", 0, _J1, "0+", "GP0"),
        Pin("clicks", 1, _J1, "1+", "GP1"),
        Pin("ready", 0, _J1, "2+", "GP2"),
        Pin("attempt", 0, _J1, "0-", "GN0"),
        Pin("herald", 0, _J1, "1-", "GN1"),
        Pin("gate", 0, _J1, "2-", "GN2"),
        Pin("gate", 1, _J1, "3-", "GN3"),
        Pin("trig", 0, _J1, "4-", "GN4"),
        Pin("trig", 1, _J1, "5-", "GN5"),
        Pin("trig", 2, _J1, "6-", "GN6"),
        Pin("trig", 3, _J1, "7-", "GN7"),
    ),
    bitstream_ext="bit",
    loader_board="ulx3s",
    status_led=("led", 0),
    # router1 needs over 13 minutes on this design while it is far from its target clock;
    # router2 routes it in about one, to the same Fmax. Timing-driven rip-up lets it reroute
    # the critical connections: 109.3 -> 129.4 MHz on one netlist at the same placement.
    nextpnr_opts=("--router", "router2", "--tmg-ripup"),
    # The margin at 125 MHz is thin and differs by seed (127.1, 126.7 and 124.3 MHz on one
    # netlist): a seed that misses gives way to the next.
    seeds=(1, 2, 3),
)
