"""iCEBreaker (iCE40UP5K-SG48): 48 MHz from the 12 MHz oscillator, UART at 3 Mbaud.

PMOD1A carries the inputs, PMOD1B the outputs. The UP5K has 5280 logic cells, so the board is
a single-click node (docs/boards.md, "The iCEBreaker build"): one detection window on two
detectors, which single-click entanglement (Humphreys 2018, Pompili 2021) needs and
Barrett-Kok's two time bins do not fit into; no link emulator (its self-test runs on the
virtual board; the board's own is the loopback test); two trigger outputs instead of four,
attempt periods up to 2**14 - 1 cycles (341 us), 41-bit counters (a run may last 12.7 h) and
16-bit record sequence numbers (the host counts gaps modulo 2**16;
counters.dropped_records stays exact).
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from ..gateware.layouts import CoreParameters
from .board import Board, Pin
from .pll import ICE40PLL

__all__ = ["ICEBREAKER"]

_IN, _OUT = ("pmod", 0), ("pmod", 1)

ICEBREAKER = Board(
    name="icebreaker",
    title="iCEBreaker (iCE40UP5K)",
    platform=ICEBreakerPlatform,
    # 48 MHz = 16 cycles per bit at 3 Mbaud, and 12 MHz x 4 exactly.
    clk_freq=48_000_000,
    min_clk_freq=48_000_000,
    baud=3_000_000,
    # Logic cells each narrowing saves (UP5K, yosys 0.69): outputs 4 -> 2: 311, offsets
    # 16 -> 14 bits: 400, sequence numbers 32 -> 16 bits: 206, counters 42 -> 41 bits: ~95;
    # one window instead of two: 386, no emulator: 1529 (docs/boards.md).
    core=CoreParameters(n_channels=2, n_windows=1, n_outputs=2, offset_width=14,
                        count_width=41, seq_width=16),
    emulator=False,
    # A 136-bit record takes 9 block RAMs at any depth up to 256: the deeper FIFO is free.
    fifo_depth=256,
    pll=ICE40PLL,
    io_attrs={"IO_STANDARD": "SB_LVCMOS"},
    pins=(
        Pin("clicks", 0, _IN, "1", "P1A1"),
        Pin("clicks", 1, _IN, "2", "P1A2"),
        Pin("ready", 0, _IN, "3", "P1A3"),
        Pin("attempt", 0, _OUT, "1", "P1B1"),
        Pin("herald", 0, _OUT, "2", "P1B2"),
        Pin("gate", 0, _OUT, "3", "P1B3"),
        Pin("trig", 0, _OUT, "7", "P1B7"),
        Pin("trig", 1, _OUT, "8", "P1B8"),
    ),
    bitstream_ext="bin",
    # openFPGALoader knows the iCEBreaker as its FT2232H programmer, like the iCE40 kits.
    loader_board="ice40_generic",
    status_led=("led_g", 0),
    # Multiplies (none in the build without the emulator) into SB_MAC16 blocks.
    synth_opts=("-dsp",),
    # At 90 % of the logic cells both a legal placement and 48 MHz depend on the seed.
    seeds=(1, 2, 3),
)
