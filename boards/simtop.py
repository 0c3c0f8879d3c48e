"""The board's pin-to-core path without a platform or a PLL, for Verilator benches.

:class:`PinSimTop` is :class:`~heraldry.boards.frontend.FrontEnd` (generic IO registers and
the synchroniser) in front of :class:`~heraldry.gateware.HeraldCore`: the pins are top-level
ports (``clicks_pin``, ``ready_pin``, ``attempt_pin``, ``gate_pin``, ``trig_pin``,
``herald_pin``), the core's other ports are renamed as in :mod:`heraldry.sim.verilog`
(``cfg``, ``table_addr/data/en``, ``events_valid/ready/payload``), and the core's own view of
the inputs is brought out as ``core_clicks`` and ``core_ready`` so that a bench can measure the
latency directly as well as through the core's records.
"""

import hashlib

from amaranth.back import verilog
from amaranth.hdl import IOPort, Module
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from ..gateware.core import HeraldCore
from ..gateware.layouts import CoreParameters
from .frontend import FrontEnd

__all__ = ["PinSimTop", "pin_top_verilog"]


class PinSimTop(wiring.Component):
    """Front-end and core with pins for ports (see the module docstring).

    Parameters
    ----------
    params : CoreParameters
    """

    def __init__(self, params: CoreParameters):
        self.params = p = params
        self.core = HeraldCore(params=p)
        self.pins = {
            "clicks": io.SingleEndedPort(IOPort(p.n_channels, name="clicks_pin"),
                                         direction="i"),
            "ready": io.SingleEndedPort(IOPort(1, name="ready_pin"), direction="i"),
            "attempt": io.SingleEndedPort(IOPort(1, name="attempt_pin"), direction="o"),
            "gate": io.SingleEndedPort(IOPort(p.n_windows, name="gate_pin"), direction="o"),
            "trig": io.SingleEndedPort(IOPort(p.n_outputs, name="trig_pin"), direction="o"),
            "herald": io.SingleEndedPort(IOPort(1, name="herald_pin"), direction="o"),
        }
        super().__init__({
            "cfg": In(p.config_layout()),
            "table_addr": In(p.table_addr_width),
            "table_data": In(p.outcome_width),
            "table_en": In(1),
            "start": In(1),
            "stop": In(1),
            "events_valid": Out(1),
            "events_ready": In(1),
            "events_payload": Out(p.record_layout()),
            "running": Out(1),
            "done": Out(1),
            "core_clicks": Out(p.n_channels),
            "core_ready": Out(1),
            "core_attempt": Out(1),
            "core_herald": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.submodules.frontend = frontend = FrontEnd(self.pins)
        m.d.comb += [
            core.config.eq(self.cfg),
            core.table.addr.eq(self.table_addr),
            core.table.data.eq(self.table_data),
            core.table.en.eq(self.table_en),
            core.start.eq(self.start),
            core.stop.eq(self.stop),
            core.clicks.eq(frontend.clicks),
            core.ready.eq(frontend.ready),
            frontend.attempt.eq(core.attempt),
            frontend.gate.eq(core.gate),
            frontend.trig.eq(core.trig),
            frontend.herald.eq(core.herald),
            self.events_valid.eq(core.events.valid),
            core.events.ready.eq(self.events_ready),
            self.events_payload.eq(core.events.payload),
            self.running.eq(core.running),
            self.done.eq(core.done),
            self.core_clicks.eq(frontend.clicks),
            self.core_ready.eq(frontend.ready),
            self.core_attempt.eq(core.attempt),
            self.core_herald.eq(core.herald),
        ]
        return m


def pin_top_verilog(params: CoreParameters, name="board_pins"):
    """Return ``(verilog_text, digest)`` of :class:`PinSimTop`."""
    text = verilog.convert(PinSimTop(params), name=name)
    return text, hashlib.sha256(text.encode()).hexdigest()[:16]
