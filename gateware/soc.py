"""The SoC: herald core, register bank, protocol engine and event FIFO behind one byte stream.

Board tops put a UART PHY (or any other byte pipe) on ``rx``/``tx`` and wire ``clicks``,
``ready`` and the trigger outputs to pins; the Amaranth-simulator transport (``sim://``) and
the virtual board drive the byte stream directly.
"""

from amaranth.hdl import Cat, DomainRenamer, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .core import HeraldCore
from .counters import EventCounters
from .emulator import LinkEmulator
from .layouts import Reason
from .memory import BlockRAM
from .protocol import EventPortSignature, ProtocolEngine
from .regbank import RegisterBank
from .regmap import RegisterMap, SocParameters

__all__ = ["EventFIFO", "HeraldSoC", "UartHeraldSoC"]


class EventFIFO(wiring.Component):
    """Event records from the core to the protocol engine, in block RAM.

    Parameters
    ----------
    layout : Layout
        The record layout.
    depth : int
    read_domain : str
        Clock domain of the read side and of ``level`` (the write side is ``sync``): the
        read domain must tick in every cycle with ``pushed`` high.

    Attributes
    ----------
    w : In(stream.Signature(layout))
        Records in; ``ready`` is low while the FIFO is full.
    r : In(EventPortSignature(layout, depth))
        Records out, read from the block RAM's registered output.
    pushed : Out(1)
        A record went in (``w.valid & w.ready``).
    """

    def __init__(self, layout, depth, read_domain="sync"):
        self.depth = depth
        self.read_domain = read_domain
        super().__init__({
            "w": In(stream.Signature(layout)),
            "r": In(EventPortSignature(layout, depth)),
            "pushed": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.ram = ram = BlockRAM(len(self.w.payload.as_value()), max(2, depth),
                                          read_domain=self.read_domain)
        level = Signal(range(depth + 1))
        full = Signal()
        w_ptr = Signal(range(depth))
        r_ptr = Signal(range(depth))
        push = self.pushed
        pop = self.r.pop

        def advance(ptr):
            return ptr + 1 if depth & (depth - 1) == 0 else Mux(ptr == depth - 1, 0, ptr + 1)

        m.d.comb += [
            self.w.ready.eq(~full),
            push.eq(self.w.valid & ~full),
            ram.w_addr.eq(w_ptr), ram.w_data.eq(self.w.payload), ram.w_en.eq(push),
            ram.r_addr.eq(r_ptr), ram.r_en.eq(pop),
            self.r.level.eq(level),
            self.r.data.eq(ram.r_data),
            self.r.valid.eq(ram.r_valid),
        ]
        with m.If(push):
            m.d.sync += w_ptr.eq(advance(w_ptr))
        with m.If(pop):
            m.d[self.read_domain] += r_ptr.eq(advance(r_ptr))
        with m.If(push & ~pop):
            m.d[self.read_domain] += [level.eq(level + 1), full.eq(level == depth - 1)]
        with m.Elif(pop & ~push):
            m.d[self.read_domain] += [level.eq(level - 1), full.eq(0)]
        return m


class HeraldSoC(wiring.Component):
    """Herald core with its host link.

    Parameters
    ----------
    params : SocParameters
    link_domain : str
        Clock domain of the host link (protocol engine, register bank, the FIFO's read
        side), ``sync`` by default. A simulation can give the link its own domain on the
        same clock and tick it only in cycles where ``link_busy`` is high: the others
        change nothing in it, and an idle link then costs nothing.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Request bytes from the host.
    tx : Out(stream.Signature(8))
        Response and event bytes to the host.
    rx_lost : In(1)
        Strobe from the PHY: one received byte was lost (overrun or framing error); counted
        in ``link.rx_overruns``.
    clicks : In(n_channels)
        Detector inputs, already synchronous to this clock domain.
    ready : In(1)
        The core's ``ready`` input.
    attempt, gate, trig, herald, outcome, running, recal : Out
        The core's outputs, for pins.
    cycle : Out(count_width)
        Cycles since reset; ``snapshot.start_cycle`` is in the same numbering.
    link_busy : Out(1)
        The link has work, a record enters the FIFO or ``rx`` offers a byte (see
        ``link_domain``); a function of registers and ``rx.valid`` only.
    """

    def __init__(self, params: SocParameters = None, link_domain="sync"):
        self.params = params = params or SocParameters()
        self.link_domain = link_domain
        self.regmap = RegisterMap(params)
        p = params.core
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "rx_lost": In(1),
            "clicks": In(p.n_channels),
            "ready": In(1),
            "attempt": Out(1),
            "gate": Out(p.n_windows),
            "trig": Out(p.n_outputs),
            "herald": Out(1),
            "outcome": Out(p.outcome_width),
            "running": Out(1),
            "recal": Out(1),
            "cycle": Out(p.count_width),
            "link_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        params = self.params
        p = params.core
        m.submodules.core = core = HeraldCore(params=p)
        to_link = DomainRenamer({"sync": self.link_domain})
        bank = RegisterBank(self.regmap)
        engine = ProtocolEngine(self.regmap)
        m.submodules.bank = to_link(bank)
        m.submodules.engine = to_link(engine)
        m.submodules.fifo = fifo = EventFIFO(p.record_layout(), params.fifo_depth,
                                             read_domain=self.link_domain)
        # The event counters run in sync (they flush every cycle); the bank reads their
        # snapshot in its own domain.
        m.submodules.counters = counters = EventCounters(p, read_domain=self.link_domain)
        m.d.comb += self.link_busy.eq(engine.busy | bank.busy | (fifo.r.level != 0)
                                      | fifo.pushed | self.rx.valid)

        wiring.connect(m, wiring.flipped(self.rx), engine.rx)
        wiring.connect(m, engine.tx, wiring.flipped(self.tx))
        wiring.connect(m, engine.bus, bank.bus)
        wiring.connect(m, engine.events, fifo.r)
        # When the FIFO is full the core's own two-record queue overflows and the core
        # counts the drop in counters.dropped_records.
        wiring.connect(m, core.events, fifo.w)

        # Core <- bank: every one of these comes from a bank flip-flop. The core reads the
        # configuration and the table throughout a run; the engine refuses writes to them
        # while a run is active, so they hold from the start cycle to the end.
        m.d.comb += [
            engine.running.eq(core.running),
            core.config.eq(bank.config),
            core.table.eq(bank.table),
            core.start.eq(bank.start),
            core.stop.eq(bank.stop),
            counters.counts.eq(core.counts),
            counters.clear.eq(core.counters_clear),
        ]
        wiring.connect(m, bank.counters, counters.port)
        if params.emulator:
            # The link emulator replaces the detector and ready inputs when enabled, so a
            # board or the virtual board heralds without detectors attached.
            m.submodules.emulator = emulator = LinkEmulator(p)
            # The inputs are selected by a copy of the enable bit next to the core (the
            # bank's register lies far off): the copy follows the bank a cycle later, in step
            # with the emulator's click register, which takes the enable of the cycle before.
            enabled = Signal()
            m.d.sync += enabled.eq(bank.emulator.enable)
            m.d.comb += [
                emulator.config.eq(bank.emulator),
                emulator.seed.eq(Cat(bank.emulator_seed.lo, bank.emulator_seed.hi)),
                emulator.reseed.eq(bank.reseed),
                emulator.attempt.eq(core.attempt),
                emulator.running.eq(core.running),
                emulator.recal.eq(core.recal),
                core.clicks.eq(Mux(enabled, emulator.clicks, self.clicks)),
                core.ready.eq(Mux(enabled, emulator.ready, self.ready)),
            ]
        else:
            m.d.comb += [core.clicks.eq(self.clicks), core.ready.eq(self.ready)]
        for name in ("attempt", "gate", "trig", "herald", "outcome", "running", "recal"):
            m.d.comb += getattr(self, name).eq(getattr(core, name))

        # Status.
        cycle = Signal(p.count_width)
        m.d.sync += cycle.eq(cycle + 1)
        m.d.comb += self.cycle.eq(cycle)
        start_cycle = Signal(p.count_width)
        with m.If(bank.start & ~core.running):
            m.d.sync += start_cycle.eq(cycle)
        reason = Signal(Reason)
        runs = Signal(32)
        with m.If(core.done):
            m.d.sync += [reason.eq(core.reason), runs.eq(runs + 1)]

        # Link statistics.
        overruns = Signal(32)
        with m.If(self.rx_lost):
            m.d.sync += overruns.eq(overruns + 1)
        records_in = Signal(32)
        max_level = Signal.like(fifo.r.level)
        with m.If(fifo.pushed):
            m.d.sync += records_in.eq(records_in + 1)
            with m.If(fifo.r.level >= max_level):
                m.d.sync += max_level.eq(fifo.r.level + 1)

        # The core numbers every record it produces, dropped ones included; mirror that
        # number for the host, which needs it to see gaps at the edges of a run. The drops
        # of a cycle reach the drop counter's step (counts.dropped_records) a cycle later;
        # registered twice more, the mirror lags the core by three cycles.
        drops_1 = Signal(2)
        new_drops = Signal(2)
        m.d.sync += [drops_1.eq(core.counts.dropped_records), new_drops.eq(drops_1)]
        next_seq = Signal(p.seq_width)
        with m.If(fifo.pushed | (new_drops != 0)):
            m.d.sync += next_seq.eq(next_seq + fifo.pushed + new_drops)

        link = bank.link
        m.d.comb += [
            link.rx_frames.eq(engine.stats.rx_frames),
            link.rx_crc_errors.eq(engine.stats.rx_crc_errors),
            link.rx_errors.eq(engine.stats.rx_errors),
            link.rx_refused.eq(engine.stats.rx_refused),
            link.rx_overruns.eq(overruns),
            link.tx_event_frames.eq(engine.stats.tx_event_frames),
            link.tx_records.eq(engine.stats.tx_records),
            link.records_in.eq(records_in),
            link.fifo_level.eq(fifo.r.level),
            link.fifo_max_level.eq(max_level),
        ]
        m.d.comb += [
            bank.status.running.eq(core.running),
            bank.status.recal.eq(core.recal),
            bank.status.reason.eq(reason),
            bank.status.runs.eq(runs),
            bank.status.next_seq.eq(next_seq),
            bank.status.cycle.eq(cycle),
            bank.status.start_cycle.eq(start_cycle),
        ]
        return m


class UartHeraldSoC(wiring.Component):
    """:class:`HeraldSoC` behind a UART: what a board top instantiates.

    Parameters
    ----------
    params : SocParameters
        ``clk_freq`` is the clock this component runs at.
    baud : int
        Default 3 Mbaud.

    Attributes
    ----------
    rx_pin : In(1)
        Serial line from the host (asynchronous; synchronised inside the UART).
    tx_pin : Out(1)
        Serial line to the host.
    clicks, ready, attempt, gate, trig, herald, outcome, running, recal, cycle
        As on :class:`HeraldSoC`.
    """

    #: Bytes buffered between the UART receiver and the protocol engine, which pauses its
    #: receiver while it sends a response.
    RX_BUFFER = 16

    def __init__(self, params: SocParameters = None, baud=3_000_000):
        from .uart import divisor_for
        self.soc = HeraldSoC(params)
        self.params = self.soc.params
        self.divisor = divisor_for(self.params.clk_freq, baud)
        members = {name: member for name, member in self.soc.signature.members.items()
                   if name not in ("rx", "tx", "rx_lost")}
        super().__init__({"rx_pin": In(1, init=1), "tx_pin": Out(1, init=1), **members})

    def elaborate(self, platform):
        from .uart import UART
        m = Module()
        m.submodules.soc = soc = self.soc
        m.submodules.uart = uart = UART(self.divisor)
        m.submodules.rx_buffer = buffer = SyncFIFOBuffered(width=8, depth=self.RX_BUFFER)
        m.d.comb += [
            uart.rx_pin.eq(self.rx_pin),
            self.tx_pin.eq(uart.tx_pin),
            buffer.w_data.eq(uart.rx.payload),
            buffer.w_en.eq(uart.rx.valid),
            uart.rx.ready.eq(buffer.w_rdy),
            soc.rx_lost.eq(uart.lost),
        ]
        # One byte register between the buffer and the engine, taken from the buffer while
        # it is empty: the buffer's read enable comes from a flip-flop, not through the
        # engine's receiver. A byte per two cycles is 16 times the UART's rate at most.
        held = Signal(8)
        holding = Signal()
        m.d.comb += [buffer.r_en.eq(~holding), soc.rx.payload.eq(held),
                     soc.rx.valid.eq(holding)]
        with m.If(~holding & buffer.r_rdy):
            m.d.sync += [held.eq(buffer.r_data), holding.eq(1)]
        with m.Elif(holding & soc.rx.ready):
            m.d.sync += holding.eq(0)
        wiring.connect(m, soc.tx, uart.tx)
        for name, member in self.signature.members.items():
            if name in ("rx_pin", "tx_pin"):
                continue
            if member.flow == In:
                m.d.comb += getattr(soc, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(soc, name))
        return m
