"""iCEBreaker (iCE40UP5K-SG48): 48 MHz from the 12 MHz oscillator, UART at 3 Mbaud.

PMOD1A carries the inputs, PMOD1B the outputs. The UP5K has 5280 logic cells, so counters
are 42 bits wide (they wrap after 25.4 h at 48 MHz, more than a day) and the event FIFO holds
128 records.
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
    core=CoreParameters(n_channels=2, n_windows=2, n_outputs=4, count_width=42),
    fifo_depth=128,
    pll=ICE40PLL,
    io_attrs={"IO_STANDARD": "SB_LVCMOS"},
    pins=(
        Pin("clicks", 0, _IN, "1", "P1A1"),
        Pin("clicks", 1, _IN, "2", "P1A2"),
        Pin("ready", 0, _IN, "3", "P1A3"),
        Pin("attempt", 0, _OUT, "1", "P1B1"),
        Pin("herald", 0, _OUT, "2", "P1B2"),
        Pin("gate", 0, _OUT, "3", "P1B3"),
        Pin("gate", 1, _OUT, "4", "P1B4"),
        Pin("trig", 0, _OUT, "7", "P1B7"),
        Pin("trig", 1, _OUT, "8", "P1B8"),
        Pin("trig", 2, _OUT, "9", "P1B9"),
        Pin("trig", 3, _OUT, "10", "P1B10"),
    ),
    bitstream_ext="bin",
    # openFPGALoader knows the iCEBreaker as its FT2232H programmer, like the iCE40 kits.
    loader_board="ice40_generic",
    status_led=("led_g", 0),
)
