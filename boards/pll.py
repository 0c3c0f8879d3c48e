"""PLLs of the supported FPGA families: divider solvers and the clock-domain components.

Each solver returns the exact output frequency reachable from the input clock; it raises if
the requested frequency cannot be produced exactly within the family's VCO and phase-detector
limits, because the host converts nanoseconds with ``id.clk_freq`` and a rounded clock would
make every window drift.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import AsyncFFSynchronizer

__all__ = ["ICE40PLLSettings", "ECP5PLLSettings", "ice40_pll_settings", "ecp5_pll_settings",
           "ICE40PLL", "ECP5PLL"]


@dataclass(frozen=True)
class ICE40PLLSettings:
    """Dividers of an iCE40 ``SB_PLL40`` in SIMPLE feedback mode:
    ``f_out = f_in * (divf + 1) / ((divr + 1) * 2**divq)``."""
    f_in: int
    divr: int
    divf: int
    divq: int

    @property
    def f_pfd(self):
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self):
        return self.f_pfd * (self.divf + 1)

    @property
    def f_out(self):
        return self.f_vco / (1 << self.divq)

    @property
    def filter_range(self):
        # The loop-filter setting for the phase-detector frequency, as icepll chooses it.
        for limit, value in ((17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)):
            if self.f_pfd < limit:
                return value
        return 6


def ice40_pll_settings(f_in, f_out):
    """Dividers producing exactly ``f_out`` from ``f_in`` on an iCE40 PLL.

    Limits (iCE40 sysCLOCK PLL design guide): PFD 10 .. 133 MHz, VCO 533 .. 1066 MHz,
    output 16 .. 275 MHz, DIVR 0..15, DIVF 0..127, DIVQ 1..6.
    """
    if not 16e6 <= f_out <= 275e6:
        raise ValueError(f"iCE40 PLL output {f_out / 1e6:g} MHz is outside 16 .. 275 MHz")
    for divr in range(16):
        for divq in range(1, 7):
            for divf in range(128):
                s = ICE40PLLSettings(f_in, divr, divf, divq)
                if not 10e6 <= s.f_pfd <= 133e6 or not 533e6 <= s.f_vco <= 1066e6:
                    continue
                if f_in * (divf + 1) == f_out * (divr + 1) * (1 << divq):
                    return s
    raise ValueError(f"an iCE40 PLL cannot make exactly {f_out / 1e6:g} MHz from "
                     f"{f_in / 1e6:g} MHz")


@dataclass(frozen=True)
class ECP5PLLSettings:
    """Dividers of an ECP5 ``EHXPLLL`` with CLKOP feedback:
    ``f_out = f_in * clkfb_div / clki_div`` and ``f_vco = f_out * clkop_div``."""
    f_in: int
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_pfd(self):
        return self.f_in / self.clki_div

    @property
    def f_out(self):
        return self.f_pfd * self.clkfb_div

    @property
    def f_vco(self):
        return self.f_out * self.clkop_div


def ecp5_pll_settings(f_in, f_out):
    """Dividers producing exactly ``f_out`` from ``f_in`` on an ECP5 PLL.

    Limits (ECP5 sysCLOCK PLL user guide, TN1263): PFD 3.125 .. 400 MHz, VCO 400 .. 800 MHz,
    CLKI_DIV 1..128, CLKFB_DIV 1..80, CLKOP_DIV 1..128. The highest exact PFD wins (least
    jitter), then the VCO nearest 600 MHz, as Project Trellis' ecppll chooses.
    """
    for clki_div in range(1, 129):
        if f_in / clki_div < 3.125e6:
            break
        if (f_out * clki_div) % f_in:
            continue
        clkfb_div = f_out * clki_div // f_in
        if not 1 <= clkfb_div <= 80 or f_in / clki_div > 400e6:
            continue
        valid = [ECP5PLLSettings(f_in, clki_div, clkfb_div, clkop_div)
                 for clkop_div in range(1, 129)]
        valid = [s for s in valid if 400e6 <= s.f_vco <= 800e6]
        if valid:
            return min(valid, key=lambda s: abs(s.f_vco - 600e6))
    raise ValueError(f"an ECP5 PLL cannot make exactly {f_out / 1e6:g} MHz from "
                     f"{f_in / 1e6:g} MHz")


class _PLLDomain(wiring.Component):
    """Drives the ``sync`` clock domain (defined by the parent) from a PLL, and holds it in
    reset until the PLL locks.

    Parameters
    ----------
    clk_port : PortLike
        The board's oscillator pin (requested with ``dir="-"``).
    f_in, f_out : int
        Oscillator and target frequencies in Hz.

    Attributes
    ----------
    locked : Out(1)
        The PLL's LOCK output.
    """

    def __init__(self, clk_port, f_in, f_out):
        self._clk_port = clk_port
        self.f_in = int(f_in)
        self.f_out = int(f_out)
        self.settings = self.solve(self.f_in, self.f_out)
        super().__init__({"locked": wiring.Out(1)})

    def elaborate(self, platform):
        m = Module()
        clk = Signal(name="pll_out")
        self.instantiate(m, clk)
        m.d.comb += ClockSignal("sync").eq(clk)
        # The PLL output is constrained here, so nextpnr times the design at the target clock.
        if platform is not None:
            platform.add_clock_constraint(clk, self.f_out)
        # The synchronised reset reaches nearly every flip-flop: the family may put it on a
        # global network, so that its fan-out does not limit the clock.
        reset = Signal(init=1)
        m.submodules.reset_sync = AsyncFFSynchronizer(~self.locked, reset, o_domain="sync")
        m.d.comb += ResetSignal("sync").eq(self.distribute_reset(m, reset))
        return m

    def distribute_reset(self, m, reset):
        return reset


class ICE40PLL(_PLLDomain):
    """``sync`` from an iCE40 ``SB_PLL40_PAD`` fed straight from the oscillator pin."""

    solve = staticmethod(ice40_pll_settings)

    def instantiate(self, m, clk):
        s = self.settings
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=s.divr, p_DIVF=s.divf, p_DIVQ=s.divq, p_FILTER_RANGE=s.filter_range,
            i_PACKAGEPIN=self._clk_port.io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk,
            o_LOCK=self.locked,
        )


class ECP5PLL(_PLLDomain):
    """``sync`` from an ECP5 ``EHXPLLL`` (CLKOP, fed back internally from CLKOP)."""

    solve = staticmethod(ecp5_pll_settings)

    def instantiate(self, m, clk):
        s = self.settings
        m.submodules.clk_in_buf = clk_in_buf = io.Buffer("i", self._clk_port)
        clk_in = clk_in_buf.i
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{self.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=s.clki_div, p_CLKFB_DIV=s.clkfb_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=s.clkop_div,
            # The coarse phase of CLKOP against the VCO; with CLKOP fed back it only moves
            # the output against the oscillator, which nothing here depends on.
            p_CLKOP_CPHASE=s.clkop_div // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk, o_LOCK=self.locked,
        )

    def distribute_reset(self, m, reset):
        # A clock buffer drives a global network, which also reaches the flip-flops' LSR.
        global_reset = Signal()
        m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset, i_CE=1, o_CLKO=global_reset)
        return global_reset
