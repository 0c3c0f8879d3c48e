"""What describes a board, and the board top shared by every board.

A board is a :class:`Board`: an amaranth-boards platform, the PLL and target clock, the UART
baud rate, the SoC parameters and the pinout of the detector inputs, ``ready`` and the
trigger outputs. :class:`BoardTop` puts the PLL, the front-end, the SoC and the UART together
on that platform.
"""

from dataclasses import dataclass, replace

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.lib import io
from amaranth.hdl import ClockDomain, Elaboratable, Module

from ..gateware.layouts import CoreParameters
from ..gateware.regmap import SocParameters
from ..gateware.soc import UartHeraldSoC
from ..gateware.uart import divisor_for
from .frontend import FRONTEND_LATENCY, INPUT_NAMES, OUTPUT_LATENCY, OUTPUT_NAMES, FrontEnd

__all__ = ["Pin", "Board", "BoardTop"]


@dataclass(frozen=True)
class Pin:
    """One front-end pin.

    Attributes
    ----------
    signal : str
        ``clicks``, ``ready``, ``attempt``, ``gate``, ``trig`` or ``herald``.
    index : int
        Bit of that signal (channel, window or output number).
    connector : tuple
        amaranth-boards connector ``(name, number)``.
    pin : str
        Pin of that connector.
    label : str
        What is printed on the board next to it, for the pinout table.
    """
    signal: str
    index: int
    connector: tuple
    pin: str
    label: str

    @property
    def name(self):
        if self.signal in ("ready", "attempt", "herald"):
            return self.signal
        return f"{self.signal}[{self.index}]"


@dataclass(frozen=True)
class Board:
    """A supported board.

    Attributes
    ----------
    name : str
        What ``heraldry build NAME`` takes.
    title : str
        Human-readable name.
    platform : type
        The amaranth-boards platform class.
    clk_freq : int
        Target core clock in Hz; the design is constrained (and timing checked) at it.
    min_clk_freq : int
        The lowest core clock the project accepts for this board.
    baud : int
        UART baud rate to the on-board FTDI.
    core : CoreParameters
        Core parameters of this board's build.
    fifo_depth : int
        Event FIFO depth in records.
    max_burst : int
        Most words in one read or write request (``SocParameters.max_burst``).
    max_records_per_frame : int
        Most event records in one event frame (``SocParameters.max_records_per_frame``).
    emulator : bool
        Build the link emulator in (``SocParameters.emulator``).
    pll : type
        :class:`~heraldry.boards.pll.ICE40PLL` or :class:`~heraldry.boards.pll.ECP5PLL`.
    io_attrs : dict
        Electrical attributes of the front-end pins.
    pins : tuple of Pin
        The front-end pinout.
    bitstream_ext : str
        Extension of the bitstream among the build products (``bin``, ``bit``).
    loader_board : str
        openFPGALoader's ``-b`` name.
    status_led : tuple or None
        ``(resource, number)`` of an LED lit while a run is in progress.
    synth_opts : tuple
        Extra options of the family's yosys ``synth_*`` command.
    nextpnr_opts : tuple
        Extra options of nextpnr.
    seeds : tuple of int
        nextpnr placement seeds, tried in this order on the same netlist until one meets
        the target clock (the first always runs). A fixed list keeps the build reproducible.
    notes : str
        Anything a user of the board must know (shown in the documentation).
    """
    name: str
    title: str
    platform: type
    clk_freq: int
    min_clk_freq: int
    baud: int
    core: CoreParameters
    fifo_depth: int
    pll: type
    io_attrs: dict
    pins: tuple
    bitstream_ext: str
    loader_board: str
    status_led: tuple = None
    max_burst: int = SocParameters.max_burst
    max_records_per_frame: int = SocParameters.max_records_per_frame
    emulator: bool = SocParameters.emulator
    synth_opts: tuple = ()
    nextpnr_opts: tuple = ()
    seeds: tuple = (1,)
    notes: str = ""

    def __post_init__(self):
        if self.clk_freq < self.min_clk_freq:
            raise ValueError(f"{self.name}: clk_freq {self.clk_freq} Hz is below the required "
                             f"{self.min_clk_freq} Hz")
        widths = {"clicks": self.core.n_channels, "ready": 1, "attempt": 1,
                  "gate": self.core.n_windows, "trig": self.core.n_outputs, "herald": 1}
        for signal, width in widths.items():
            indices = sorted(p.index for p in self.pins if p.signal == signal)
            if indices != list(range(width)):
                raise ValueError(f"{self.name}: pinout of {signal!r} has bits {indices}; the "
                                 f"core needs bits 0..{width - 1}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(seed, int) and seed >= 0 for seed in self.seeds):
            raise ValueError(f"{self.name}: seeds {self.seeds!r} must be distinct integers "
                             f">= 0, at least one")
        unknown = {p.signal for p in self.pins} - set(widths)
        if unknown:
            raise ValueError(f"{self.name}: unknown pinout signals {sorted(unknown)}")
        places = [(p.connector, p.pin) for p in self.pins]
        if len(set(places)) != len(places):
            raise ValueError(f"{self.name}: a connector pin is assigned twice")

    @property
    def soc_params(self) -> SocParameters:
        return SocParameters(core=self.core, clk_freq=self.clk_freq, fifo_depth=self.fifo_depth,
                             max_burst=self.max_burst,
                             max_records_per_frame=self.max_records_per_frame,
                             emulator=self.emulator, frontend_latency=FRONTEND_LATENCY,
                             output_latency=OUTPUT_LATENCY)

    @property
    def uart_divisor(self):
        return divisor_for(self.clk_freq, self.baud)

    def validate(self):
        """Raise ``ValueError`` if the PLL cannot make ``clk_freq`` exactly from the board's
        oscillator or the UART divisor would be more than 1 % off the baud rate."""
        f_in = int(self.platform().default_clk_frequency)
        self.pll.solve(f_in, self.clk_freq)
        self.uart_divisor

    def with_clock(self, clk_freq, *, exploratory=False):
        """The same board at another core clock. ``exploratory`` allows a clock below the
        required minimum (to measure, or to use the board while the design is too slow)."""
        if exploratory:
            return replace(self, clk_freq=clk_freq,
                           min_clk_freq=min(self.min_clk_freq, clk_freq))
        return replace(self, clk_freq=clk_freq)

    def resources(self):
        """The front-end pins as amaranth-boards resources ``herald_<signal>``."""
        out = []
        for signal in INPUT_NAMES + OUTPUT_NAMES:
            pins = sorted((p for p in self.pins if p.signal == signal), key=lambda p: p.index)
            direction = "i" if signal in INPUT_NAMES else "o"
            subsignals = [Subsignal(f"b{p.index}", Pins(p.pin, dir=direction, conn=p.connector))
                          for p in pins]
            out.append(Resource(f"herald_{signal}", 0, *subsignals, Attrs(**self.io_attrs)))
        return out

    def create_platform(self):
        platform = self.platform()
        platform.add_resources(self.resources())
        return platform


def _concat(ports):
    """Several single-pin ports as one port, bit ``i`` from ``ports[i]``."""
    port = ports[0]
    for other in ports[1:]:
        port = port + other
    return port


class BoardTop(Elaboratable):
    """PLL, front-end and the SoC behind its UART, on a board.

    Parameters
    ----------
    board : Board
    """

    def __init__(self, board: Board):
        self.board = board
        self.soc = UartHeraldSoC(board.soc_params, baud=board.baud)

    def elaborate(self, platform):
        board = self.board
        m = Module()
        m.domains.sync = ClockDomain("sync")
        clk_port = platform.request(platform.default_clk, dir="-")
        m.submodules.pll = board.pll(clk_port, platform.default_clk_frequency, board.clk_freq)

        ports = {}
        for signal in INPUT_NAMES + OUTPUT_NAMES:
            resource = platform.request(f"herald_{signal}", 0, dir="-")
            bits = sorted((p for p in board.pins if p.signal == signal), key=lambda p: p.index)
            ports[signal] = _concat([getattr(resource, f"b{p.index}") for p in bits])
        m.submodules.frontend = frontend = FrontEnd(ports)
        m.submodules.soc = soc = self.soc

        m.d.comb += [
            soc.clicks.eq(frontend.clicks),
            soc.ready.eq(frontend.ready),
            frontend.attempt.eq(soc.attempt),
            frontend.gate.eq(soc.gate),
            frontend.trig.eq(soc.trig),
            frontend.herald.eq(soc.herald),
        ]
        uart_pins = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart_pins.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart_pins.tx)
        m.d.comb += [soc.rx_pin.eq(uart_rx.i), uart_tx.o.eq(soc.tx_pin)]
        if board.status_led is not None:
            m.submodules.led = led = io.Buffer("o", platform.request(*board.status_led,
                                                                     dir="-"))
            m.d.comb += led.o.eq(soc.running)
        return m
