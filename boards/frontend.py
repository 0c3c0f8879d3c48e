"""Board front-end: the pins of the detector inputs, ``ready`` and the trigger outputs.

Input path, per pin::

    pin ─► IO register (in the IO cell) ─► 2-flop synchroniser ─► core

A level that reaches a pin during cycle ``t`` is captured by the IO register at the end of
cycle ``t``, leaves the synchroniser's first flop at the end of ``t + 1`` and its second at
the end of ``t + 2``, so the core sees it in cycle ``t + FRONTEND_LATENCY``. The same holds for
``ready``. The SoC reports :data:`FRONTEND_LATENCY` in ``id.frontend_latency`` so that the
host can refer window offsets to the pins.

Output path, per pin::

    core ─► register ─► IO register (in the IO cell) ─► pin

so a value the core drives in cycle ``t`` is on the pin in cycle ``t + OUTPUT_LATENCY``. The
register ahead of the IO cell splits the way from the core's logic to the pins, which lie at
the die's edge, over two cycles.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["FrontEnd", "FRONTEND_LATENCY", "OUTPUT_LATENCY", "SYNC_STAGES", "OUTPUT_STAGES",
           "INPUT_NAMES", "OUTPUT_NAMES"]

#: Flops of the synchroniser behind the IO register: two, so that a metastable IO register
#: output has a full cycle to settle before the core uses it.
SYNC_STAGES = 2
#: ``S``: cycles from a detector (or ``ready``) pin to the core's ``clicks`` (``ready``).
FRONTEND_LATENCY = 1 + SYNC_STAGES
#: Fabric registers between a core output and its IO register.
OUTPUT_STAGES = 1
#: Cycles from a core output (attempt, gate, trig, herald) to its pin.
OUTPUT_LATENCY = OUTPUT_STAGES + 1

#: Pins of the front-end, in the order of the pinout tables.
INPUT_NAMES = ("clicks", "ready")
OUTPUT_NAMES = ("attempt", "gate", "trig", "herald")


class FrontEnd(wiring.Component):
    """IO registers and synchronisers between the board's pins and the herald core.

    Parameters
    ----------
    ports : dict
        ``{"clicks": port, "ready": port, "attempt": port, "gate": port, "trig": port,
        "herald": port}``: :class:`amaranth.lib.io.PortLike` objects, inputs for ``clicks``
        and ``ready``, outputs for the rest. The widths of ``clicks``, ``gate`` and ``trig``
        are those of the core (``n_channels``, ``n_windows``, ``n_outputs``).

    Attributes
    ----------
    clicks : Out(n_channels)
        Detector inputs, synchronous, ``FRONTEND_LATENCY`` cycles behind the pins.
    ready : Out(1)
        The ``ready`` input, synchronous, ``FRONTEND_LATENCY`` cycles behind its pin.
    attempt, herald : In(1)
    gate : In(n_windows)
    trig : In(n_outputs)
        Core outputs; on the pins ``OUTPUT_LATENCY`` cycles later.
    """

    latency = FRONTEND_LATENCY
    output_latency = OUTPUT_LATENCY

    def __init__(self, ports):
        missing = [name for name in INPUT_NAMES + OUTPUT_NAMES if name not in ports]
        if missing:
            raise ValueError(f"FrontEnd ports: missing {', '.join(missing)}")
        if len(ports["ready"]) != 1 or len(ports["attempt"]) != 1 or len(ports["herald"]) != 1:
            raise ValueError("FrontEnd ports: ready, attempt and herald must be 1 pin each, not "
                             f"{len(ports['ready'])}, {len(ports['attempt'])}, "
                             f"{len(ports['herald'])}")
        self._ports = dict(ports)
        super().__init__({
            "clicks": Out(len(ports["clicks"])),
            "ready": Out(1),
            "attempt": In(1),
            "gate": In(len(ports["gate"])),
            "trig": In(len(ports["trig"])),
            "herald": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        for name in INPUT_NAMES:
            buffer = io.FFBuffer("i", self._ports[name])
            m.submodules[f"{name}_ioreg"] = buffer
            # Asynchronous detector pulses: the IO register may go metastable.
            m.submodules[f"{name}_sync"] = FFSynchronizer(buffer.i, getattr(self, name),
                                                          stages=SYNC_STAGES)
        for name in OUTPUT_NAMES:
            buffer = io.FFBuffer("o", self._ports[name])
            m.submodules[f"{name}_ioreg"] = buffer
            value = getattr(self, name)
            for stage in range(OUTPUT_STAGES):
                staged = Signal.like(value, name=f"{name}_stage{stage}")
                m.d.sync += staged.eq(value)
                value = staged
            m.d.comb += buffer.o.eq(value)
        return m
