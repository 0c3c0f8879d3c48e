"""The one description of the core's parameters, configuration, counters and event records.

Gateware ports, the golden model, the benches and the host all derive their layouts from
:class:`CoreParameters`; nothing here is written twice.
"""

from dataclasses import dataclass

from amaranth.lib import data, enum

__all__ = ["Reason", "RecordKind", "CoreParameters", "HERALD_LATENCY", "START_LATENCY",
           "STOP_LATENCY", "RUN_START_LATENCY", "RECORD_LATENCY", "MAX_TABLE_ADDR_WIDTH",
           "CLASS_NONE", "CLASS_ONE", "CLASS_MANY",
           "flatten_layout"]


class Reason(enum.Enum, shape=2):
    """Why a run ended, valid with the ``done`` strobe and in END records."""
    HERALD = 0
    TIMEOUT = 1
    MAX_ATTEMPTS = 2
    STOPPED = 3


class RecordKind(enum.Enum, shape=2):
    """What an event record reports. Zero is never emitted, so an all-zero record is invalid."""
    HERALD = 1
    DIAGNOSTIC = 2
    END = 3


#: Cycles from an attempt's last in-window offset ``e`` to its ``herald`` strobe: the click
#: pattern is complete at e, the table row arrives registered twice, the decision registered.
HERALD_LATENCY = 3
#: Cycles from the cycle in which ``ready`` is sampled (run start, or ``ready`` high/rising)
#: to the ``attempt`` strobe.
START_LATENCY = 1
#: Cycles from a ``stop`` strobe to ``done``: the run ends in the stop cycle itself.
STOP_LATENCY = 0
#: Cycles from the accepted ``start`` (cycle s) to the first cycle in which the scheduler may
#: start an attempt: ``ready`` is first sampled in s + RUN_START_LATENCY, so the earliest
#: attempt is at s + RUN_START_LATENCY + START_LATENCY. The core derives its per-run constants
#: (window ends, the deadline's bounds) from the configuration in these cycles.
RUN_START_LATENCY = 4
#: Cycles from the cycle that produces an event record (a decision, or ``done``) to the first
#: cycle in which it can be transferred on ``events``. Whether it finds room in the queue is
#: decided in the producing cycle, after that cycle's transfer.
RECORD_LATENCY = 2
#: Widest decision-table address: 2 bits per window x channel. The table is double-buffered
#: per entry with one bank-select flip-flop pair per entry, so it is kept to 256 entries.
MAX_TABLE_ADDR_WIDTH = 8

#: Click classes per window x channel (2 bits each in the table address).
CLASS_NONE, CLASS_ONE, CLASS_MANY = 0, 1, 2


@dataclass(frozen=True)
class CoreParameters:
    """Build-time parameters of :class:`heraldry.gateware.HeraldCore`.

    Parameters
    ----------
    n_channels : int
        Detector inputs.
    n_windows : int
        Detection windows per attempt.
    n_outputs : int
        Trigger outputs.
    offset_width : int
        Width of every in-attempt offset (period, window start/length, output start/stop,
        holdoff). 16 bits allow attempts of up to 65535 cycles (327 us at 200 MHz).
    outcome_width : int
        Width of a decision-table entry; outcomes are 1 .. 2**outcome_width - 1.
    count_width : int
        Width of every counter, of the attempt index and of the start cycle in records.
        48 bits do not wrap within 16 days at 200 MHz even at one event per cycle.
    limit_width : int
        Width of ``max_attempts``, ``timeout`` and ``batch``.
    seq_width : int
        Width of the record sequence number (wraps modulo 2**seq_width, never resets).
    """
    n_channels: int = 2
    n_windows: int = 2
    n_outputs: int = 4
    offset_width: int = 16
    outcome_width: int = 2
    count_width: int = 48
    limit_width: int = 32
    seq_width: int = 32

    def __post_init__(self):
        for name in ("n_channels", "n_windows", "n_outputs", "offset_width", "outcome_width",
                     "count_width", "limit_width", "seq_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.table_addr_width > MAX_TABLE_ADDR_WIDTH:
            raise ValueError(
                f"n_windows x n_channels = {self.n_windows} x {self.n_channels} needs a "
                f"{self.table_addr_width}-bit decision-table address; the limit is "
                f"{MAX_TABLE_ADDR_WIDTH} bits (n_windows * n_channels <= "
                f"{MAX_TABLE_ADDR_WIDTH // 2})")
        if self.count_width < self.offset_width:
            raise ValueError(f"count_width ({self.count_width}) must be at least offset_width "
                             f"({self.offset_width})")

    # -- derived sizes ----------------------------------------------------------------------
    @property
    def n_cells(self):
        """Window x channel cells; cell ``w * n_channels + c`` is window w, channel c."""
        return self.n_windows * self.n_channels

    @property
    def table_addr_width(self):
        return 2 * self.n_windows * self.n_channels

    @property
    def table_depth(self):
        return 1 << self.table_addr_width

    @property
    def n_outcomes(self):
        """Heralded outcome codes 1 .. n_outcomes."""
        return (1 << self.outcome_width) - 1

    @property
    def latency(self):
        return HERALD_LATENCY

    # -- layouts ----------------------------------------------------------------------------
    def config_layout(self):
        ow, lw = self.offset_width, self.limit_width
        return data.StructLayout({
            "period": ow,
            "windows": data.ArrayLayout(data.StructLayout({"start": ow, "length": ow}),
                                        self.n_windows),
            "outputs": data.ArrayLayout(data.StructLayout({"start": ow, "stop": ow}),
                                        self.n_outputs),
            "holdoff": ow,
            "stop_on_herald": 1,
            "max_attempts": lw,
            "timeout": lw,
            "batch": lw,
            "diagnostic": 1,
        })

    def cell_layout(self):
        """One window x channel cell of a record: click class and first counted offset."""
        return data.StructLayout({"cls": 2, "first": self.offset_width})

    def record_layout(self):
        cw = self.count_width
        return data.StructLayout({
            "seq": self.seq_width,
            "kind": RecordKind,
            "reason": Reason,
            "outcome": self.outcome_width,
            "attempt": cw,
            "start": cw,
            "cells": data.ArrayLayout(
                data.ArrayLayout(self.cell_layout(), self.n_channels), self.n_windows),
        })

    def counters_layout(self):
        return self._counter_fields(self.count_width, self.count_width)

    def counts_layout(self):
        """What each counter of :meth:`counters_layout` adds in a cycle (the core's ``counts``
        port): the same fields, each as wide as its largest step (two records can be
        dropped in a cycle, every other counter steps by at most one)."""
        return self._counter_fields(1, 2)

    def _counter_fields(self, width, dropped_width):
        """The event counters, every one ``width`` bits wide but ``dropped_records``."""
        per_channel = data.ArrayLayout(width, self.n_channels)
        return data.StructLayout({
            "attempts": width,
            "heralds": data.ArrayLayout(width, self.n_outcomes),
            "clicks_in_window": per_channel,
            "clicks_out_of_window": per_channel,
            "multi_clicks": data.ArrayLayout(per_channel, self.n_windows),
            "afterpulses": per_channel,
            "dropped_records": dropped_width,
            "cycles": width,
        })

    def table_port_layout(self):
        return data.StructLayout({
            "addr": self.table_addr_width,
            "data": self.outcome_width,
            "en": 1,
        })


def flatten_layout(layout, prefix=(), offset=0):
    """Every leaf field of a (nested) layout as ``(path, offset, width)``, in bit order.

    ``path`` is a tuple of field names and array indices. Used for fast packing in Python
    and for the host's vectorised decoder, so neither restates the layout.
    """
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            yield from flatten_layout(field.shape, prefix + (name,), offset + field.offset)
    elif isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = data.Layout.cast(elem).size if isinstance(elem, data.Layout) else \
            _shape_width(elem)
        for index in range(layout.length):
            yield from flatten_layout(elem, prefix + (index,), offset + index * size)
    else:
        yield prefix, offset, _shape_width(layout)


def _shape_width(shape):
    from amaranth.hdl import Shape
    return Shape.cast(shape).width
