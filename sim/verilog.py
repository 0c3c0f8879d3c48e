"""Verilog of the herald core for Verilator, with port names that are legal identifiers.

``config`` and ``table`` are Verilog keywords, so the simulation top renames them, and the
``events`` stream becomes ``events_valid``, ``events_ready`` and ``events_payload``; every other
port keeps the core's name. The core gives its counters' steps (``counts``); the top sums
them into ``counters``, each counter's value in every cycle, as the benches compare them
with the golden model (the SoC keeps them in block RAM, :mod:`heraldry.gateware.counters`).
"""

import hashlib

from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gateware.core import HeraldCore
from ..gateware.counters import counter_paths
from ..gateware.layouts import CoreParameters
from ..gateware.regmap import field_at

__all__ = ["CoreSimTop", "core_verilog", "sum_counts"]


def sum_counts(m, params, counts, clear, counters):
    """Drive ``counters`` (a counters_layout view) with the running sums of the core's
    ``counts`` since its ``counters_clear``: counter i in cycle t is the sum of its steps of
    the cycles after the clear up to and including t, 0 in the clear's cycle."""
    for path in counter_paths(params):
        step = field_at(counts, path)
        total = Signal(params.count_width)
        held = Signal(params.count_width, reset_less=True)
        m.d.comb += [total.eq(Mux(clear, 0, held + step)), field_at(counters, path).eq(total)]
        m.d.sync += held.eq(total)


class CoreSimTop(wiring.Component):
    """:class:`HeraldCore` with ``config`` -> ``cfg``, ``table`` -> ``table_addr``,
    ``table_data``, ``table_en`` and ``events`` -> ``events_valid/ready/payload``; ``counts``
    and ``counters_clear`` summed into ``counters`` (:func:`sum_counts`)."""

    def __init__(self, params: CoreParameters):
        self.core = HeraldCore(params=params)
        members = dict(self.core.signature.members)
        config = members.pop("config")
        members.pop("table")
        members["cfg"] = config
        # Verilator mangles double underscores in C++ names, so the stream is flattened.
        members.pop("events")
        members.pop("counts")
        members.pop("counters_clear")
        members["counters"] = Out(params.counters_layout())
        members["events_valid"] = Out(1)
        members["events_ready"] = In(1)
        members["events_payload"] = Out(params.record_layout())
        members["table_addr"] = In(params.table_addr_width)
        members["table_data"] = In(params.outcome_width)
        members["table_en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.d.comb += [
            self.events_valid.eq(core.events.valid),
            core.events.ready.eq(self.events_ready),
            self.events_payload.eq(core.events.payload),
            core.config.eq(self.cfg),
            core.table.addr.eq(self.table_addr),
            core.table.data.eq(self.table_data),
            core.table.en.eq(self.table_en),
        ]
        sum_counts(m, self.core.params, core.counts, core.counters_clear, self.counters)
        for name, member in self.signature.members.items():
            if name in ("cfg", "table_addr", "table_data", "table_en", "events_valid",
                        "events_ready", "events_payload", "counters"):
                continue
            mine, theirs = getattr(self, name), getattr(core, name)
            if member.flow == In:
                m.d.comb += theirs.eq(mine)
            else:
                m.d.comb += mine.eq(theirs)
        return m


def core_verilog(params: CoreParameters, name="herald_core"):
    """Return ``(verilog_text, digest)``; the digest names cached builds."""
    text = verilog.convert(CoreSimTop(params), name=name)
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]
