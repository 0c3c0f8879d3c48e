"""Verilog of the herald core for Verilator, with port names that are legal identifiers.

``config`` and ``table`` are Verilog keywords, so the simulation top renames them, and the
``events`` stream becomes ``events_valid``, ``events_ready`` and ``events_payload``; every other
port keeps the core's name.
"""

import hashlib

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gateware.core import HeraldCore
from ..gateware.layouts import CoreParameters

__all__ = ["CoreSimTop", "core_verilog"]


class CoreSimTop(wiring.Component):
    """:class:`HeraldCore` with ``config`` -> ``cfg``, ``table`` -> ``table_addr``,
    ``table_data``, ``table_en`` and ``events`` -> ``events_valid/ready/payload``."""

    def __init__(self, params: CoreParameters):
        self.core = HeraldCore(params=params)
        members = dict(self.core.signature.members)
        config = members.pop("config")
        members.pop("table")
        members["cfg"] = config
        # Verilator mangles double underscores in C++ names, so the stream is flattened.
        members.pop("events")
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
        for name, member in self.signature.members.items():
            if name in ("cfg", "table_addr", "table_data", "table_en", "events_valid",
                        "events_ready", "events_payload"):
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
