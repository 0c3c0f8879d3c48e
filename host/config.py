"""Experiment configuration in physical units, checked against the device before anything is
written to it."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..sim.golden import CoreConfig
from .errors import ConfigError
from .protocols import BarrettKok, Custom, Protocol, SingleClick

__all__ = ["Config", "PROTOCOLS", "ns_to_cycles"]

#: Protocols known by name.
PROTOCOLS = {"single-click": SingleClick, "barrett-kok": BarrettKok}


def ns_to_cycles(field_name, ns, clk_freq, limit_bits, *, minimum=0):
    """``ns`` nanoseconds in clock cycles, rounded to the nearest cycle (halves round up).

    Raises :class:`ConfigError` if the value is not a finite number, is negative, or its
    rounded value does not fit ``limit_bits`` bits (or is below ``minimum``).
    """
    if isinstance(ns, bool) or not isinstance(ns, (int, float)) or not math.isfinite(ns):
        raise ConfigError(field_name, ns, "must be a finite number of nanoseconds")
    cycles = math.floor(ns * clk_freq / 1e9 + 0.5)
    period_ns = 1e9 / clk_freq
    top = (1 << limit_bits) - 1
    if cycles < minimum:
        raise ConfigError(field_name, ns, f"must be at least {minimum} cycle(s) = "
                                          f"{minimum * period_ns:g} ns at {clk_freq / 1e6:g} MHz")
    if cycles > top:
        raise ConfigError(field_name, ns, f"{cycles} cycles exceed the {limit_bits}-bit "
                                          f"register (max {top} cycles = {top * period_ns:g} ns "
                                          f"at {clk_freq / 1e6:g} MHz)")
    return cycles


def _count(field_name, value, bits):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field_name, value, "must be an integer")
    top = (1 << bits) - 1
    if not 0 <= value <= top:
        raise ConfigError(field_name, value, f"must be 0..{top} ({bits}-bit register)")
    return value


@dataclass
class Config:
    """An experiment's configuration, in nanoseconds and counts.

    Times are converted to cycles of the device's clock (``DeviceInfo.clk_freq``), rounded
    to the nearest cycle, halves up: at 100 MHz, 12.4 ns is 1 cycle and 15 ns is 2 cycles.

    Times are as seen at the pins, from the start of the attempt on the output pins. The
    outputs all have the same latency, so they are configured as given; a click reaches the
    core ``output_latency + frontend_latency`` cycles (both from the identification block;
    0 on the bare SoC) after the pins' time, so the windows are moved that much later in
    the core. Record ``first`` offsets are core offsets: subtract the same to get pin times.
    Nothing is written to the device unless every field fits; the first one that does not
    raises :class:`ConfigError` naming the field, the value and the limit.

    Attributes
    ----------
    period_ns : float
        Attempt period.
    windows_ns : sequence of (start, length)
        Detection windows, offsets from the attempt start; at most ``n_windows``. Each must
        lie inside the period, and the herald decision, ``herald_latency`` cycles after the
        last window's last cycle, must come before the next attempt.
    outputs_ns : sequence of (start, stop)
        Trigger outputs, high for ``start <= offset < stop``; ``stop <= period``.
    holdoff_ns : float
        Dead time after an accepted click (afterpulse rejection).
    protocol : Protocol, str, mapping or sequence
        A :class:`~heraldry.host.protocols.Protocol`, a name from :data:`PROTOCOLS`
        (``"single-click"``, ``"barrett-kok"``), a mapping for
        :class:`~heraldry.host.protocols.Custom`, or an explicit decision table (one
        outcome per table address).
    stop_on_herald : bool
        End the run at the first herald.
    max_attempts : int
        End the run after this many attempts (0: unlimited).
    timeout_s : float
        End the run this long after its start (0: never), in seconds.
    batch : int
        Attempts per batch; after each batch the core waits for a rising edge of ``ready``
        (0: no batches).
    diagnostic : bool
        Also record attempts that clicked without heralding.
    """
    period_ns: float
    windows_ns: Sequence = ()
    outputs_ns: Sequence = ()
    holdoff_ns: float = 0.0
    protocol: object = "single-click"
    stop_on_herald: bool = False
    max_attempts: int = 0
    timeout_s: float = 0.0
    batch: int = 0
    diagnostic: bool = False

    # -- compilation ------------------------------------------------------------------------
    def protocol_object(self):
        proto = self.protocol
        if isinstance(proto, Protocol):
            return proto
        if isinstance(proto, str):
            if proto not in PROTOCOLS:
                raise ConfigError("protocol", proto, f"unknown; known protocols: "
                                                     f"{', '.join(sorted(PROTOCOLS))}")
            return PROTOCOLS[proto]()
        if isinstance(proto, Mapping):
            return Custom(proto, windows_needed=1)
        if isinstance(proto, Sequence) and not isinstance(proto, (str, bytes)):
            return None     # explicit table
        raise ConfigError("protocol", proto, "must be a Protocol, a protocol name, a mapping "
                                             "or a decision table")

    def table(self, device):
        """The decision table for ``device`` (a :class:`DeviceInfo`)."""
        params = device.core_params
        proto = self.protocol_object()
        if proto is None:
            table = list(self.protocol)
            if len(table) > params.table_depth:
                raise ConfigError("protocol", f"table of {len(table)} entries",
                                  f"the device's decision table has {params.table_depth} "
                                  f"entries ({params.n_windows} windows x "
                                  f"{params.n_channels} channels)")
            for i, code in enumerate(table):
                if isinstance(code, bool) or not isinstance(code, int) \
                        or not 0 <= code <= params.n_outcomes:
                    raise ConfigError(f"protocol[{i}]", code,
                                      f"outcome codes are 0..{params.n_outcomes}")
            return table + [0] * (params.table_depth - len(table))
        if proto.windows_needed > len(self.windows_ns):
            raise ConfigError("protocol", proto.name,
                              f"uses {proto.windows_needed} detection window(s), the "
                              f"configuration enables {len(self.windows_ns)}")
        return proto.compile(params)

    def compile(self, device):
        """Check against ``device`` and return ``(CoreConfig in cycles, table)``.

        Raises
        ------
        ConfigError
        """
        f = device.clk_freq
        ow, lw = device.offset_width, device.limit_width
        L = device.herald_latency
        period = ns_to_cycles("period_ns", self.period_ns, f, ow, minimum=1)

        if len(self.windows_ns) > device.n_windows:
            raise ConfigError("windows_ns", f"{len(self.windows_ns)} windows",
                              f"the device has {device.n_windows}")
        windows = []
        # Pins to core: the attempt leaves on the output pins `output_latency` cycles after
        # the core starts it, a click reaches the core `frontend_latency` after its pin.
        delay = device.output_latency + device.frontend_latency
        moved = f" (moved {delay} cycles later for the pin-to-core latency)" if delay else ""
        for i, window in enumerate(self.windows_ns):
            name = f"windows_ns[{i}]"
            if len(window) != 2:
                raise ConfigError(name, window, "must be (start, length)")
            start = ns_to_cycles(name + ".start", window[0], f, ow) + delay
            length = ns_to_cycles(name + ".length", window[1], f, ow, minimum=1)
            if start + length > period:
                raise ConfigError(name, tuple(window),
                                  f"window outside the period: ends at cycle "
                                  f"{start + length}{moved}, the period is {period} cycles "
                                  f"({self.period_ns} ns)")
            windows.append((start, length))
        if windows:
            e = max(s + n - 1 for s, n in windows)
            if e + L >= period:
                raise ConfigError(
                    "windows_ns", [tuple(w) for w in self.windows_ns],
                    f"the last window ends at cycle {e}{moved}; with the herald latency of {L} "
                    f"cycles the decision (cycle {e + L}) must come before the next attempt "
                    f"(cycle {period}): need last end + {L} < period")

        if len(self.outputs_ns) > device.n_outputs:
            raise ConfigError("outputs_ns", f"{len(self.outputs_ns)} outputs",
                              f"the device has {device.n_outputs}")
        outputs = []
        for i, output in enumerate(self.outputs_ns):
            name = f"outputs_ns[{i}]"
            if len(output) != 2:
                raise ConfigError(name, output, "must be (start, stop)")
            start = ns_to_cycles(name + ".start", output[0], f, ow)
            stop = ns_to_cycles(name + ".stop", output[1], f, ow)
            if not start < stop:
                raise ConfigError(name, tuple(output),
                                  f"start ({start} cycles) must be before stop ({stop} cycles)")
            if stop > period:
                raise ConfigError(name, tuple(output),
                                  f"stop ({stop} cycles) must be <= the period "
                                  f"({period} cycles)")
            outputs.append((start, stop))

        holdoff = ns_to_cycles("holdoff_ns", self.holdoff_ns, f, ow)
        max_attempts = _count("max_attempts", self.max_attempts, lw)
        batch = _count("batch", self.batch, lw)
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)):
            raise ConfigError("timeout_s", self.timeout_s, "must be a number of seconds")
        timeout = ns_to_cycles("timeout_s", self.timeout_s * 1e9, f, lw) \
            if self.timeout_s else 0
        for name in ("stop_on_herald", "diagnostic"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "must be True or False")
        core = CoreConfig(period=period, windows=tuple(windows), outputs=tuple(outputs),
                          holdoff=holdoff, stop_on_herald=self.stop_on_herald,
                          max_attempts=max_attempts, timeout=timeout, batch=batch,
                          diagnostic=self.diagnostic)
        return core, self.table(device)

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self):
        proto = self.protocol
        if isinstance(proto, str):
            proto_value = proto
        elif isinstance(proto, Protocol) and type(proto) in PROTOCOLS.values() \
                and proto.name in PROTOCOLS:
            proto_value = {"name": proto.name, **{k: v for k, v in vars(proto).items()
                                                   if k != "windows_needed"}}
        elif isinstance(proto, Sequence):
            proto_value = [int(x) for x in proto]
        else:
            proto_value = {"name": getattr(proto, "name", "custom")}
        return {
            "period_ns": self.period_ns,
            "windows_ns": [list(w) for w in self.windows_ns],
            "outputs_ns": [list(o) for o in self.outputs_ns],
            "holdoff_ns": self.holdoff_ns, "protocol": proto_value,
            "stop_on_herald": self.stop_on_herald, "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s, "batch": self.batch, "diagnostic": self.diagnostic,
        }

    @classmethod
    def from_dict(cls, d, table=None):
        """Inverse of :meth:`to_dict`. A custom rule cannot be serialised; pass the compiled
        ``table`` to get an equivalent configuration back."""
        d = dict(d)
        proto = d["protocol"]
        if isinstance(proto, dict):
            name = proto["name"]
            if name in PROTOCOLS:
                args = {k: tuple(v) if isinstance(v, list) else v
                        for k, v in proto.items() if k != "name"}
                d["protocol"] = PROTOCOLS[name](**args)
            elif table is not None:
                d["protocol"] = list(table)
            else:
                raise ConfigError("protocol", name, "a custom rule is not stored; pass the "
                                                    "decision table")
        d["windows_ns"] = [tuple(w) for w in d["windows_ns"]]
        d["outputs_ns"] = [tuple(o) for o in d["outputs_ns"]]
        return cls(**d)
