"""Register bank: the map of :mod:`heraldry.gateware.regmap` as storage, strobes and a
read multiplexer behind a simple word bus."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .emulator import emulator_config_layout
from .regmap import (CONTROL_RESEED, CONTROL_SNAPSHOT, CONTROL_START, CONTROL_STOP,
                     LINK_FIELDS, STATUS_FIELDS, WORD_BITS, Access, RegisterMap)

__all__ = ["BusSignature", "RegisterBank", "status_layout", "link_layout", "ADDR_WIDTH",
           "BUS_READ_LATENCY"]

#: Word-address width of the bus and of request frames (two address bytes).
ADDR_WIDTH = 16
#: Cycles from ``r_stb`` to valid ``r_data``: the read multiplexer is split in two
#: registered stages so that it keeps up with a 200 MHz clock.
BUS_READ_LATENCY = 2
#: Words per first-stage read group (selected by the low address bits).
_READ_GROUP = 16


class BusSignature(wiring.Signature):
    """Word bus, initiator's view.

    ``addr`` selects a word; ``w_stb`` writes ``w_data`` to it; ``r_stb`` reads it and
    ``r_data`` holds the word :data:`BUS_READ_LATENCY` cycles later.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(ADDR_WIDTH),
            "r_stb": Out(1),
            "r_data": In(WORD_BITS),
            "w_stb": Out(1),
            "w_data": Out(WORD_BITS),
        })


def status_layout(params):
    """Live status the SoC feeds the bank: :data:`STATUS_FIELDS` plus the cycle counters."""
    fields = {name: width for name, (width, _) in STATUS_FIELDS.items()}
    fields["next_seq"] = params.seq_width
    fields["cycle"] = params.count_width
    fields["start_cycle"] = params.count_width
    return data.StructLayout(fields)


def link_layout():
    return data.StructLayout({name: WORD_BITS for name in LINK_FIELDS})


def _resolve(view, path):
    for key in path:
        view = view[key] if isinstance(key, int) else getattr(view, key)
    return view


def _value(view):
    return view.as_value() if hasattr(view, "as_value") else view


class RegisterBank(wiring.Component):
    """Control/status registers generated from a :class:`RegisterMap`.

    Parameters
    ----------
    regmap : RegisterMap

    Attributes
    ----------
    bus : In(BusSignature())
        Word bus from the protocol engine.
    config : Out(config_layout)
        The configuration shadow registers. The core samples them in the cycle a run starts,
        which is what makes a configuration take effect atomically.
    table : Out(table_port_layout)
        Decision-table write strobe; one cycle per written entry, the cycle after the bus
        write.
    start, stop : Out(1)
        Strobes from the ``control`` register, the cycle after the bus write.
    counters : In(counters_layout)
        The core's live counters; latched by the SNAPSHOT strobe.
    status : In(status_layout)
        Live status; ``cycle`` and ``start_cycle`` are latched with the counters.
    link : In(link_layout)
        Link statistics, read live (each fits one word, so a read is never torn).
    emulator, emulator_seed : Out
        Link-emulator registers (only with ``SocParameters.emulator``).
    reseed : Out(1)
        Strobe from the ``control`` register's RESEED bit.
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        p = regmap.soc.core
        super().__init__({
            "bus": In(BusSignature()),
            "config": Out(p.config_layout()),
            "table": Out(p.table_port_layout()),
            "start": Out(1),
            "stop": Out(1),
            "counters": In(p.counters_layout()),
            "status": In(status_layout(p)),
            "link": In(link_layout()),
            **({"emulator": Out(emulator_config_layout(p)),
                "emulator_seed": Out(data.StructLayout({"lo": WORD_BITS, "hi": WORD_BITS})),
                "reseed": Out(1)} if regmap.soc.emulator else {}),
        })

    def _port_view(self, port):
        return getattr(self, port)

    def elaborate(self, platform):
        m = Module()
        regmap = self.regmap
        p = regmap.soc.core
        bus = self.bus

        # Snapshot copies: one latch of everything so that a burst read is consistent.
        snap_counters = Signal(p.counters_layout())
        snap_status = Signal(status_layout(p))
        snapshot = Signal()
        with m.If(snapshot):
            m.d.sync += [snap_counters.eq(self.counters), snap_status.eq(self.status)]

        def source(reg):
            if reg.access is Access.SNAPSHOT:
                view = {"counters": snap_counters, "status": snap_status}[reg.port]
                return _value(_resolve(view, reg.path))
            if reg.access is Access.CONST:
                return None
            return _value(_resolve(self._port_view(reg.port), reg.path))

        # -- reads: two registered stages --------------------------------------------------
        # Stage 1 picks a word within each group of 16 addresses, stage 2 picks the group.
        words = {}
        for reg in regmap:
            if not reg.access.readable:
                continue
            value = reg.reset if reg.access is Access.CONST else source(reg)
            for word in range(reg.words):
                if reg.access is Access.CONST:
                    words[reg.addr + word] = (value >> (word * WORD_BITS)) & (
                        (1 << WORD_BITS) - 1)
                else:
                    words[reg.addr + word] = value[word * WORD_BITS:(word + 1) * WORD_BITS]
        groups = sorted({a // _READ_GROUP for a in words})
        low_bits = _READ_GROUP.bit_length() - 1
        stage1 = {g: Signal(WORD_BITS, name=f"read_group{g}") for g in groups}
        group_sel = Signal(ADDR_WIDTH - low_bits)
        stage1_valid = Signal()
        m.d.sync += [stage1_valid.eq(bus.r_stb), group_sel.eq(bus.addr[low_bits:])]
        for g in groups:
            with m.Switch(bus.addr[:low_bits]):
                for a in range(g * _READ_GROUP, (g + 1) * _READ_GROUP):
                    if a in words:
                        with m.Case(a % _READ_GROUP):
                            m.d.sync += stage1[g].eq(words[a])
                with m.Default():
                    m.d.sync += stage1[g].eq(0)
        with m.If(stage1_valid):
            with m.Switch(group_sel):
                for g in groups:
                    with m.Case(g):
                        m.d.sync += bus.r_data.eq(stage1[g])
                with m.Default():
                    m.d.sync += bus.r_data.eq(0)

        # -- writes -------------------------------------------------------------------------
        # Strobes are registered (they act the cycle after the write): the core's start
        # logic is deep, and the bus decode must not be in front of it.
        control = regmap["control"]
        table = regmap["table"]
        m.d.sync += [self.start.eq(0), self.stop.eq(0), snapshot.eq(0), self.table.en.eq(0)]
        if regmap.soc.emulator:
            m.d.sync += self.reseed.eq(0)
        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                with m.Case(control.addr):
                    m.d.sync += [
                        self.start.eq((bus.w_data & CONTROL_START) != 0),
                        self.stop.eq((bus.w_data & CONTROL_STOP) != 0),
                        snapshot.eq((bus.w_data & CONTROL_SNAPSHOT) != 0),
                    ]
                    if regmap.soc.emulator:
                        m.d.sync += self.reseed.eq((bus.w_data & CONTROL_RESEED) != 0)
                for reg in regmap:
                    if reg.access is Access.RW:
                        with m.Case(reg.addr):
                            target = _resolve(self._port_view(reg.port), reg.path)
                            m.d.sync += target.eq(bus.w_data[:reg.width])
            with m.If((bus.addr >= table.addr) & (bus.addr < table.addr + table.count)):
                m.d.sync += [
                    self.table.addr.eq(bus.addr - table.addr),
                    self.table.data.eq(bus.w_data),
                    self.table.en.eq(1),
                ]
        return m
