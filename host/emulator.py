"""Link-emulator settings in physical units, checked and converted for the device.

The emulator (:mod:`heraldry.gateware.emulator`) replaces the detector inputs with clicks
drawn in gateware, so a board, or the virtual board, can herald without detectors. Its
registers are written only after every value has been checked; bad values raise
:class:`~heraldry.host.errors.ConfigError` naming the field, the value and the limit.
Photons arrive no earlier than ``MIN_ARRIVAL_OFFSET`` cycles after the attempt strobe, and
attempts come at most every ``min_period`` cycles (both from the gateware module). Settings
written before a run starts govern it from its first attempt on.
"""

import math
from dataclasses import dataclass, field

from ..gateware.emulator import MIN_ARRIVAL_OFFSET, min_period
from ..sim.emulator_model import pattern_thresholds, probability_threshold
from .errors import ConfigError

__all__ = ["EmulatorWindow", "EmulatorSettings", "emulator_registers",
           "settings_from_physics"]


@dataclass
class EmulatorWindow:
    """Photons of one detection window.

    Attributes
    ----------
    offset_ns : float
        Arrival time at the detector pins after the attempt leaves its pin (before
        jitter), the same time frame as :class:`Config`'s windows; in the core that is
        ``output_latency + frontend_latency`` cycles later, and at least
        ``MIN_ARRIVAL_OFFSET`` cycles after the attempt strobe when the window can click.
    jitter_ns : float
        Width of the uniform arrival jitter: arrivals fall in offset .. offset + jitter.
    patterns : dict
        Click pattern -> probability per attempt; pattern k has bit c set when detector c
        clicks (for two detectors: 1 = A only, 2 = B only, 3 = both). The rest: no click.
    """
    offset_ns: float
    jitter_ns: float = 0.0
    patterns: dict = field(default_factory=dict)


@dataclass
class EmulatorSettings:
    """Everything the emulator draws from.

    Attributes
    ----------
    windows : list of EmulatorWindow
        At most the device's number of windows; missing ones never click.
    dark_rate_hz : sequence of float
        Dark-count rate per detector, over every running cycle.
    recal_ns : float
        How long the emulated nodes hold ``ready`` low after ``recal`` rises.
    seed : int
        64-bit seed of the generators.
    """
    windows: list
    dark_rate_hz: tuple = (0.0, 0.0)
    recal_ns: float = 1000.0
    seed: int = 1


def _cycles(name, ns, clk_freq, bits):
    if isinstance(ns, bool) or not isinstance(ns, (int, float)) or not math.isfinite(ns) \
            or ns < 0:
        raise ConfigError(name, ns, "must be a finite, non-negative number of nanoseconds")
    cycles = math.floor(ns * clk_freq / 1e9 + 0.5)
    if cycles >= 1 << bits:
        raise ConfigError(name, ns, f"{cycles} cycles exceed the {bits}-bit register "
                                    f"(max {(1 << bits) - 1} cycles at {clk_freq / 1e6:g} MHz)")
    return cycles


def emulator_registers(settings: EmulatorSettings, device, period_cycles=None) -> dict:
    """Register name -> value for ``settings`` on ``device`` (a DeviceInfo).

    ``period_cycles``, if given, is checked against the emulator's drawing time and against
    arrivals that would fall after the attempt's period (they would never be seen).
    """
    p = device.core_params
    ow = p.offset_width
    if len(settings.windows) > p.n_windows:
        raise ConfigError("emulator.windows", len(settings.windows),
                          f"the device has {p.n_windows} detection windows")
    if len(settings.dark_rate_hz) != p.n_channels:
        raise ConfigError("emulator.dark_rate_hz", tuple(settings.dark_rate_hz),
                          f"needs one rate per detector ({p.n_channels})")
    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int) \
            or not 0 <= settings.seed < 1 << 64:
        raise ConfigError("emulator.seed", settings.seed, "must be an integer 0 .. 2**64-1")
    if period_cycles is not None and period_cycles < min_period(p):
        raise ConfigError("period", period_cycles,
                          f"the emulator needs at least {min_period(p)} cycles per attempt")
    regs = {"emulator.enable": 1,
            "emulator.seed_lo": settings.seed & 0xFFFFFFFF,
            "emulator.seed_hi": settings.seed >> 32}
    n_patterns = (1 << p.n_channels) - 1
    delay = device.output_latency + device.frontend_latency
    for w in range(p.n_windows):
        window = settings.windows[w] if w < len(settings.windows) else EmulatorWindow(0.0)
        name = f"emulator.windows.{w}"
        # Pin times, as in Config: the emulator drives the core's clicks directly, so its
        # arrivals move by the same pin-to-core delay as the windows do.
        offset = _cycles(f"{name}.offset_ns", window.offset_ns, device.clk_freq, ow) + delay
        if offset >= 1 << ow:
            raise ConfigError(f"{name}.offset_ns", window.offset_ns,
                              f"{offset} cycles (with the pin-to-core delay of {delay}) "
                              f"exceed the {ow}-bit register")
        jitter = _cycles(f"{name}.jitter_ns", window.jitter_ns, device.clk_freq, ow)
        if window.patterns and offset < MIN_ARRIVAL_OFFSET:
            raise ConfigError(f"{name}.offset_ns", window.offset_ns,
                              _arrival_limit(offset, device.clk_freq))
        if period_cycles is not None and window.patterns and \
                offset + jitter >= period_cycles:
            raise ConfigError(f"{name}.offset_ns", window.offset_ns,
                              f"arrivals up to offset {offset + jitter} cycles fall after the "
                              f"attempt period of {period_cycles} cycles")
        try:
            thresholds = pattern_thresholds(window.patterns, p.n_channels)
        except ValueError as exc:
            raise ConfigError(f"{name}.patterns", window.patterns, str(exc)) from None
        regs[f"{name}.offset"] = offset
        regs[f"{name}.jitter"] = jitter
        for k in range(n_patterns):
            regs[f"{name}.thresholds.{k}"] = thresholds[k]
    for c, rate in enumerate(settings.dark_rate_hz):
        if not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate < 0:
            raise ConfigError(f"emulator.dark_rate_hz[{c}]", rate,
                              "must be a finite, non-negative rate in Hz")
        per_cycle = rate / device.clk_freq
        if per_cycle > 1:
            raise ConfigError(f"emulator.dark_rate_hz[{c}]", rate,
                              f"at most one click per cycle ({device.clk_freq:g} Hz)")
        regs[f"emulator.dark.{c}"] = probability_threshold(per_cycle)
    regs["emulator.recal_cycles"] = _cycles("emulator.recal_ns", settings.recal_ns,
                                            device.clk_freq, 32)
    return regs


def _arrival_limit(offset_cycles, clk_freq):
    return (f"{offset_cycles} cycles: photons arrive at least {MIN_ARRIVAL_OFFSET} cycles "
            f"({MIN_ARRIVAL_OFFSET * 1e9 / clk_freq:g} ns at {clk_freq / 1e6:g} MHz) after "
            f"the attempt strobe")


def settings_from_physics(link, clk_freq, window_starts_ns, window_ns, *, jitter_ns=None,
                          seed=1, recal_ns=1000.0):
    """Emulator settings reproducing the physics model of ``link`` (a
    :class:`heraldry.sim.physics.LinkParameters`): click-pattern probabilities for each
    detection window starting at ``window_starts_ns`` (photons arrive uniformly over the
    first ``jitter_ns``, default half the window, of it) and dark counts per detector.

    A window may not start before ``MIN_ARRIVAL_OFFSET`` cycles after the attempt strobe
    (:class:`ConfigError`): its photons could not arrive there.
    """
    from ..sim import physics

    for w, start in enumerate(window_starts_ns):
        cycles = _cycles(f"window_starts_ns[{w}]", start, clk_freq, 64)
        if cycles < MIN_ARRIVAL_OFFSET:
            raise ConfigError(f"window_starts_ns[{w}]", start, _arrival_limit(cycles, clk_freq))

    window_cycles = max(1, round(window_ns * 1e-9 * clk_freq))
    mapping = physics.emulator_mapping(link, window_cycles, clk_freq)
    match = "marginal" if link.protocol == "single-click" else "herald"
    per_window = mapping.window_probabilities(match)
    jitter = window_ns / 2 if jitter_ns is None else jitter_ns
    windows = [EmulatorWindow(start, jitter, {int(k): float(v) for k, v in patterns.items()})
               for start, patterns in zip(window_starts_ns, per_window)]
    dark = tuple(float(x) * clk_freq for x in mapping.dark_per_cycle)
    return EmulatorSettings(windows=windows, dark_rate_hz=dark, recal_ns=recal_ns, seed=seed)
