"""Stimulus scenarios for the herald core, and what the golden model says they produce.

A :class:`Scenario` is simulator-neutral: the Amaranth-simulator tests, the cocotb benches
and the Verilated differential harness all drive the same inputs cycle by cycle and collect
the same :class:`Observed` outputs, which are compared with :func:`expect`.
"""

from dataclasses import dataclass, field

import numpy as np

from ..gateware.layouts import HERALD_LATENCY, CoreParameters, Reason
from .golden import (CoreConfig, HeraldCoreModel, Record, Trace, check_table_writes,
                     last_window_offset)

__all__ = ["RunSpec", "Scenario", "Observed", "expect", "random_scenario", "scenario_inputs"]


@dataclass
class RunSpec:
    """One run: the start strobe's cycle, the config on the port then, and an optional stop."""
    start: int
    config: CoreConfig
    stop: int | None = None


@dataclass
class Scenario:
    params: CoreParameters
    runs: list                                   # RunSpec, in order
    table_writes: list = field(default_factory=list)   # (cycle, addr, data)
    clicks: list = field(default_factory=list)  # (cycle, channel) rising edges
    ready: Trace = field(default_factory=lambda: Trace.constant(True))
    events_ready: Trace = field(default_factory=lambda: Trace.constant(True))
    n_cycles: int = 0                            # cycles to simulate


@dataclass
class Observed:
    """Outputs of the core, as absolute cycles."""
    attempts: list = field(default_factory=list)     # cycle of each attempt strobe
    heralds: list = field(default_factory=list)      # (cycle, outcome)
    dones: list = field(default_factory=list)        # (cycle, Reason)
    recal_rises: list = field(default_factory=list)
    recal_falls: list = field(default_factory=list)
    records: list = field(default_factory=list)      # Records transferred, in order
    counters: list = field(default_factory=list)     # counters dict read the cycle after done

    def assert_equal(self, other, what="observed"):
        for name in ("attempts", "heralds", "dones", "recal_rises", "recal_falls", "records",
                     "counters"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                index = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                             min(len(mine), len(theirs)))
                raise AssertionError(
                    f"{what}: {name} differ at index {index} (lengths {len(mine)} vs "
                    f"{len(theirs)}): {mine[index:index + 3]} vs {theirs[index:index + 3]}")


def table_at(scenario, cycle):
    """The decision table as a run starting in ``cycle`` sees it."""
    return table_at_writes(scenario.params, scenario.table_writes, cycle)


def expect(scenario) -> Observed:
    """What the golden model says the core does under ``scenario``."""
    model = HeraldCoreModel(scenario.params, scenario.events_ready)
    expected = Observed()
    clicks = sorted(scenario.clicks)
    previous_end = -1
    for spec in scenario.runs:
        if spec.start <= previous_end:
            raise ValueError(f"a run starts in cycle {spec.start}, while the previous one runs "
                             f"until cycle {previous_end}: the core would ignore that start")
        result = model.run(spec.config, table_at(scenario, spec.start), spec.start,
                           clicks, scenario.ready, spec.stop)
        expected.attempts += result.attempts
        expected.heralds += result.heralds
        expected.dones.append((result.end_cycle, result.reason))
        expected.recal_rises += result.recal_starts
        expected.recal_falls += result.recal_ends
        expected.counters.append(result.counters)
        previous_end = result.end_cycle
    check_table_writes([(s, end) for s, (end, _) in
                        zip((spec.start for spec in scenario.runs), expected.dones)],
                       scenario.table_writes)
    expected.records = [r for _, r in model.drain(scenario.n_cycles)]
    return expected


def scenario_inputs(scenario):
    """Per-cycle input events: a dict cycle -> dict of changes, plus the constant parts.

    Keys: ``start``, ``stop`` (strobes), ``config`` (packed int, held until changed: put on
    the port in each run's start cycle, so that it holds through the run),
    ``table`` ((addr, data) written in that cycle), ``clicks`` (bitmask of edges: the input is
    high in that cycle and low in the next), ``ready``, ``events_ready`` (levels from that
    cycle on).
    """
    p = scenario.params
    events = {}

    def at(t):
        return events.setdefault(t, {})

    for spec in scenario.runs:
        at(spec.start)["start"] = 1
        at(spec.start)["config"] = spec.config.pack(p)
        if spec.stop is not None:
            at(spec.stop)["stop"] = 1
    for t, addr, value in scenario.table_writes:
        at(t)["table"] = (addr, value)
    for t, c in scenario.clicks:
        at(t)["clicks"] = at(t).get("clicks", 0) | (1 << c)
    for name, trace in (("ready", scenario.ready), ("events_ready", scenario.events_ready)):
        at(0)[name] = int(trace.initial)
        level = trace.initial
        for t in trace.toggles:
            level = not level
            at(t)[name] = int(level)
    return events


def counters_to_dict(params, bits):
    """Unpack a counters port value into the model's nested-list form."""
    view = params.counters_layout().from_bits(bits)
    nc, nw = params.n_channels, params.n_windows
    return {
        "attempts": view.attempts,
        "heralds": [view.heralds[o] for o in range(params.n_outcomes)],
        "clicks_in_window": [view.clicks_in_window[c] for c in range(nc)],
        "clicks_out_of_window": [view.clicks_out_of_window[c] for c in range(nc)],
        "multi_clicks": [[view.multi_clicks[w][c] for c in range(nc)] for w in range(nw)],
        "afterpulses": [view.afterpulses[c] for c in range(nc)],
        "dropped_records": view.dropped_records,
        "cycles": view.cycles,
    }


def random_scenario(params, rng, *, n_runs=4, attempts_per_run=200, click_rate=0.08,
                    backpressure=0.0, ready_duty=0.9):
    """A random but legal scenario: random windows, outputs, holdoff, table, ready trace,
    clicks and back-pressure, cycling through every end condition.

    Runs follow each other closely: each run's end is found with the golden model (the end
    does not depend on back-pressure), and the next starts a few cycles later. The host's
    invariants hold: e + L < period and output stops <= period.
    """
    nc, nw = params.n_channels, params.n_windows
    runs, table_writes, clicks, ready_toggles = [], [], [], []
    write_cycles = set()

    def write(cycle, addr, value):
        if cycle not in write_cycles:          # one write per cycle on the port
            write_cycles.add(cycle)
            table_writes.append((cycle, addr, value))

    for addr in range(params.table_depth):
        if rng.random() < 0.3:
            write(1 + addr, addr, int(rng.integers(1, params.n_outcomes + 1)))
    ready = Trace((), True)
    ready.toggles = ready_toggles              # extended in place as runs are generated
    ready_level, ready_horizon = True, 0
    click_horizon = 0
    probe = HeraldCoreModel(params)
    t = params.table_depth + 5
    for run_index in range(n_runs):
        period = int(rng.integers(8, 40))
        windows = []
        for _ in range(nw):
            if rng.random() < 0.15 and windows:
                windows.append((0, 0))
                continue
            start = int(rng.integers(0, period - 6))
            # e + L < period: start + length - 1 + L <= period - 1.
            length = int(rng.integers(1, min(12, period - HERALD_LATENCY - start) + 1))
            windows.append((start, length))
        outputs = []
        for _ in range(params.n_outputs):
            a = int(rng.integers(0, period))
            outputs.append((a, int(rng.integers(a, period + 1))))
        kind = run_index % 4
        timeout = max_attempts = 0
        stop_on_herald = False
        stop = None
        span = attempts_per_run * period * 2
        if kind == 0:
            timeout = int(rng.integers(span // 2, span))
        elif kind == 1:
            max_attempts = int(rng.integers(1, attempts_per_run + 1))
            timeout = span * 4
        elif kind == 2:
            stop_on_herald = True
            timeout = span
        else:
            stop = t + int(rng.integers(span // 4, span // 2))
        horizon = t + (span * 4 if kind == 1 else span) + 2
        config = CoreConfig(
            period=period, windows=tuple(windows), outputs=tuple(outputs),
            holdoff=int(rng.integers(0, 12)), stop_on_herald=stop_on_herald,
            max_attempts=max_attempts, timeout=timeout,
            batch=int(rng.integers(1, 60)) if rng.random() < 0.4 else 0,
            diagnostic=bool(rng.random() < 0.5))
        # Ready: mostly high with short low gaps; its rising edges end batches.
        while ready_horizon < horizon and ready_duty < 1:
            mean = 20 / (1 - ready_duty) if ready_level else 20
            ready_horizon += int(rng.geometric(1 / mean)) + 1
            ready_toggles.append(ready_horizon)
            ready_level = not ready_level
        # Clicks: per channel, edges at least 2 cycles apart (the input falls in between).
        first = max(t + 1, click_horizon + 2)
        run_clicks = []
        for c in range(nc):
            n = rng.binomial(max(horizon - first, 0), click_rate)
            cycles = np.unique(rng.integers(first, horizon, size=n))
            cycles = cycles[np.concatenate(([True], np.diff(cycles) >= 2))] if n else cycles
            run_clicks += [(int(x), c) for x in cycles]
        run_clicks.sort()
        result = probe.run(config, table_at_writes(params, table_writes, t), t, run_clicks,
                           ready, stop)
        end = result.end_cycle
        run_clicks = [(x, c) for x, c in run_clicks if x <= end + 1]
        clicks += run_clicks
        click_horizon = max([x for x, _ in run_clicks], default=click_horizon)
        runs.append(RunSpec(t, config, stop))
        next_start = end + int(rng.integers(2, 20))
        # Table writes after the run and up to the next start cycle (none while it is
        # active: the table is written only while no run is active).
        for _ in range(int(rng.integers(0, 6))):
            write(int(rng.integers(end + 1, next_start + 1)),
                  int(rng.integers(0, params.table_depth)),
                  int(rng.integers(0, params.n_outcomes + 1)))
        t = next_start
    n_cycles = t + 10
    del ready_toggles[next((i for i, x in enumerate(ready_toggles) if x >= n_cycles),
                           len(ready_toggles)):]
    ev_toggles = []
    if backpressure > 0:
        # Blocked stretches of ~100 cycles, covering a `backpressure` fraction of time.
        mean_low = 100.0
        mean_high = mean_low * (1 - backpressure) / backpressure
        level, u = True, 0
        while u < n_cycles:
            u += int(rng.geometric(1 / mean_high if level else 1 / mean_low))
            ev_toggles.append(u)
            level = not level
    return Scenario(params, runs, sorted(table_writes), clicks, Trace(ready_toggles, True),
                    Trace(ev_toggles, True), n_cycles)


def table_at_writes(params, writes, cycle):
    table = [0] * params.table_depth
    for t, addr, value in writes:
        if t <= cycle:
            table[addr] = value
    return table


__all__ += ["table_at", "counters_to_dict", "Record", "Reason"]
