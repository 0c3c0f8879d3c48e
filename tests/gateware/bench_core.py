"""Cycle-exact cocotb benches of HeraldCore on Verilator.

Each bench states its expected cycles literally (worked out from the README's timing
contract) and also checks every output against the golden model. Cycle 0 is the first cycle
after reset; cycle t spans the rising edges t and t+1.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from heraldry.gateware.layouts import (RUN_START_LATENCY, START_LATENCY, CoreParameters, Reason,
                                       RecordKind)
from heraldry.host.protocols import BarrettKok, SingleClick
from heraldry.sim.drivers import Monitor
from heraldry.sim.golden import CoreConfig, Record, Trace
from heraldry.sim.scenario import (RunSpec, Scenario, counters_to_dict, expect,
                                   random_scenario, scenario_inputs)

PARAMS = CoreParameters(**json.loads(os.environ.get("HERALDRY_CORE_PARAMS", "{}")))
CLOCK_NS = 10
START = 4           # cycle of the start strobe in single-run benches
L = 3               # HeraldCore.latency, restated: the benches pin it down
# Start cycle s to the first attempt with ready high: ready is first sampled in s + K.
FIRST = RUN_START_LATENCY + START_LATENCY


class CoreBench:
    """Owns the clock, the input drivers, the output monitor, the model and the checker."""

    def __init__(self, dut, params=PARAMS):
        self.dut = dut
        self.params = params
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        self.levels = []        # per-cycle (attempt, gate, trig, running) when tracing

    async def reset(self):
        dut = self.dut
        for name in ("start", "stop", "ready", "clicks", "table_en", "table_addr",
                     "table_data", "events_ready", "cfg"):
            getattr(dut, name).value = 0
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        self.cycle0_ns = get_sim_time(unit="ns")

    def cycle_of(self, time_ns):
        return round((time_ns - self.cycle0_ns) / CLOCK_NS)

    async def run(self, scenario, *, trace_levels=False):
        """Drive ``scenario`` cycle by cycle; returns the Observed outputs."""
        dut = self.dut
        inputs = scenario_inputs(scenario)
        monitor = Monitor(self.params)
        strobes = []
        for t in range(scenario.n_cycles):
            changes = inputs.get(t, {})
            for signal in strobes:
                signal.value = 0
            strobes = []
            if "config" in changes:
                dut.cfg.value = changes["config"]
            if "ready" in changes:
                dut.ready.value = changes["ready"]
            if "events_ready" in changes:
                dut.events_ready.value = changes["events_ready"]
            for name in ("start", "stop"):
                if name in changes:
                    getattr(dut, name).value = 1
                    strobes.append(getattr(dut, name))
            if "table" in changes:
                dut.table_addr.value, dut.table_data.value = changes["table"]
                dut.table_en.value = 1
                strobes.append(dut.table_en)
            dut.clicks.value = changes.get("clicks", 0)
            await ReadOnly()
            monitor.sample(
                t, int(dut.attempt.value), int(dut.herald.value), int(dut.outcome.value),
                int(dut.done.value), int(dut.reason.value), int(dut.recal.value),
                int(dut.events_valid.value), int(dut.events_ready.value),
                lambda: dut.events_payload.value.to_unsigned(),
                lambda: dut.counters.value.to_unsigned())
            if trace_levels:
                self.levels.append((int(dut.attempt.value), int(dut.gate.value),
                                    int(dut.trig.value), int(dut.running.value)))
            await RisingEdge(dut.clk)
        return monitor.observed

    async def check(self, scenario, **kwargs):
        """Run and compare everything with the golden model; returns the observation."""
        observed = await self.run(scenario, **kwargs)
        observed.assert_equal(expect(scenario), "gateware vs golden model")
        return observed


def table_writes(table, first_cycle=0):
    """One table write per cycle, from ``first_cycle``, for every non-zero entry."""
    entries = [(a, v) for a, v in enumerate(table) if v]
    return [(first_cycle + i, a, v) for i, (a, v) in enumerate(entries)]


def single_run(config, clicks=(), *, protocol=None, n_cycles, start=None, stop=None,
               ready=None, events_ready=None, params=PARAMS):
    """A scenario with one run; the table is written before the start strobe."""
    table = (protocol or SingleClick()).compile(params)
    writes = table_writes(table)
    start = start if start is not None else len(writes) + START
    return Scenario(params, [RunSpec(start, config, stop)], writes, sorted(clicks),
                    ready or Trace.constant(True), events_ready or Trace.constant(True),
                    n_cycles), start


def cells(params, **entries):
    """Record cells with ``w{w}c{c}=(cls, first)`` entries, the rest zero."""
    out = [(0, 0)] * params.n_cells
    for key, value in entries.items():
        w, c = int(key[1]), int(key[3])
        out[w * params.n_channels + c] = value
    return tuple(out)


A, B = 0, 1
PSI_PLUS, PSI_MINUS = 1, 2


@cocotb.test()
async def window_edges_and_latency(dut):
    """Clicks at start-1, start, start+length-1 and start+length of a window; the herald comes
    exactly e + L cycles after the attempt strobe, with the outcome in the same cycle."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((5, 4), (0, 0)), max_attempts=5)
    scenario, s = single_run(config, n_cycles=0)
    a = [s + FIRST + 20 * k for k in range(5)]
    clicks = [(a[0] + 4, A), (a[1] + 5, A), (a[2] + 8, A), (a[3] + 9, A), (a[4] + 6, B)]
    scenario.clicks = clicks
    scenario.n_cycles = a[4] + 20
    observed = await bench.check(scenario)
    e = 5 + 4 - 1
    assert observed.attempts == a
    assert observed.heralds == [(a[1] + e + L, PSI_PLUS), (a[2] + e + L, PSI_PLUS),
                                (a[4] + e + L, PSI_MINUS)]
    assert observed.dones == [(a[4] + e + L, Reason.MAX_ATTEMPTS)]
    counters = observed.counters[0]
    assert counters["attempts"] == 5
    assert counters["heralds"] == [2, 1, 0]
    assert counters["clicks_in_window"] == [2, 1]
    assert counters["clicks_out_of_window"] == [2, 0]
    assert counters["cycles"] == a[4] + e + L - s
    p = PARAMS
    assert observed.records == [
        Record(0, RecordKind.HERALD, Reason.HERALD, PSI_PLUS, 1, a[1] - s, cells(p, w0c0=(1, 5))),
        Record(1, RecordKind.HERALD, Reason.HERALD, PSI_PLUS, 2, a[2] - s, cells(p, w0c0=(1, 8))),
        Record(2, RecordKind.HERALD, Reason.HERALD, PSI_MINUS, 4, a[4] - s,
               cells(p, w0c1=(1, 6))),
        Record(3, RecordKind.END, Reason.MAX_ATTEMPTS, 0, 5, a[4] + e + L - s, cells(p)),
    ]


@cocotb.test()
async def period_exact_over_1e5_attempts(dut):
    """10^5 back-to-back attempts, every one exactly `period` cycles after the previous."""
    bench = CoreBench(dut)
    await bench.reset()
    n, period = 100_000, 5
    config = CoreConfig(period=period, windows=((0, 1),), max_attempts=n)
    dut.ready.value = 1
    dut.events_ready.value = 1
    dut.cfg.value = config.pack(PARAMS)
    await RisingEdge(dut.clk)                    # cycle 1
    dut.start.value = 1                          # start strobe in cycle 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    times = []
    done_time = []

    async def watch_attempts():
        while True:
            await RisingEdge(dut.attempt)
            times.append(bench.cycle_of(get_sim_time(unit="ns")))

    async def watch_done():
        await RisingEdge(dut.done)
        await ReadOnly()
        done_time.append((bench.cycle_of(get_sim_time(unit="ns")), int(dut.reason.value)))

    cocotb.start_soon(watch_attempts())
    done_task = cocotb.start_soon(watch_done())
    await done_task
    await RisingEdge(dut.clk)
    await ReadOnly()
    counters = counters_to_dict(PARAMS, dut.counters.value.to_unsigned())
    assert len(times) == n, len(times)
    gaps = np.diff(times)
    assert np.all(gaps == period), f"irregular gaps: {sorted(set(gaps.tolist()))}"
    assert times[0] == 1 + FIRST                 # start in cycle 1
    assert done_time == [(times[-1] + 0 + L, Reason.MAX_ATTEMPTS.value)]
    assert counters["attempts"] == n
    assert counters["cycles"] == times[-1] + L - 1


@cocotb.test()
async def trigger_outputs_and_gates(dut):
    """trig[k] is high for start <= o < stop, gate[w] inside window w, attempt at o = 0;
    everything is low outside attempts and after done."""
    bench = CoreBench(dut)
    await bench.reset()
    outputs = ((0, 1), (2, 5), (11, 12), (3, 3))
    windows = ((1, 3), (6, 2))
    config = CoreConfig(period=12, windows=windows, outputs=outputs, max_attempts=3)
    scenario, s = single_run(config, n_cycles=0)
    scenario.n_cycles = s + 60
    await bench.check(scenario, trace_levels=True)
    e = 7
    attempts = [s + FIRST + 12 * k for k in range(3)]
    end = attempts[-1] + e + L
    for t, (attempt, gate, trig, running) in enumerate(bench.levels):
        active = s < t <= end
        assert running == int(active), (t, running)
        inside = [a for a in attempts if a <= t < a + 12 and t <= end]
        o = t - inside[0] if inside else None
        want_gate = sum(1 << w for w, (ws, wl) in enumerate(windows)
                        if o is not None and ws <= o < ws + wl)
        want_trig = sum(1 << k for k, (os_, op) in enumerate(outputs)
                        if o is not None and os_ <= o < op)
        assert attempt == int(o == 0), (t, attempt)
        assert gate == want_gate, (t, gate, want_gate)
        assert trig == want_trig, (t, trig, want_trig)
    # The third attempt is cut by done at offset 10: its trig[2] (offset 11) never rises.
    assert bench.levels[attempts[2] + 11][2] == 0


@cocotb.test()
async def holdoff_and_afterpulses(dut):
    """Edges within holdoff of the last counted click are afterpulses and do not extend it;
    holdoff is cleared when a run starts."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=30, windows=((2, 20),), holdoff=6, max_attempts=2)
    scenario, s = single_run(config, n_cycles=0)
    a0, a1 = s + FIRST, s + FIRST + 30
    end1 = a1 + 21 + L
    clicks = [(a0 + o, A) for o in (5, 7, 9, 11, 13)]       # 5 counted, 7/9/11 afterpulses
    clicks += [(a0 + 25, B), (a0 + 27, B)]                  # out of window, then afterpulse
    clicks += [(a1 + 1, A)]                                 # 18 after the last count
    clicks += [(end1, A)]                                   # last active cycle of the run
    s2 = end1 + 2
    clicks += [(s2 + 1, A)]                                 # 3 after, but a new run
    scenario.runs.append(RunSpec(s2, CoreConfig(period=30, windows=((2, 20),), holdoff=6,
                                                timeout=10)))
    scenario.clicks = sorted(clicks)
    scenario.n_cycles = s2 + 15
    observed = await bench.check(scenario)
    first, second = observed.counters
    assert first["afterpulses"] == [3, 1]
    assert first["clicks_in_window"] == [2, 0]
    assert first["clicks_out_of_window"] == [2, 1]
    assert first["multi_clicks"] == [[1, 0], [0, 0]]
    assert observed.heralds == []                           # class >= 2 on A: no herald
    assert second["afterpulses"] == [0, 0]          # holdoff cleared by the start
    assert second["clicks_out_of_window"] == [1, 0]
    assert second["attempts"] == 0                   # K + 1 + e + L >= timeout: none fits


@cocotb.test()
async def single_click_rejects_double_clicks(dut):
    """Exactly one click among all detectors heralds; two clicks (same or different
    detectors) are rejected; clicks outside the window do not count."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((5, 4),), max_attempts=5, diagnostic=True)
    scenario, s = single_run(config, n_cycles=0)
    a = [s + FIRST + 20 * k for k in range(5)]
    scenario.clicks = sorted([
        (a[0] + 5, A),
        (a[1] + 6, B),
        (a[2] + 5, A), (a[2] + 7, B),
        (a[3] + 5, A), (a[3] + 7, A),
        (a[4] + 5, A), (a[4] + 10, B),
    ])
    scenario.n_cycles = a[4] + 20
    observed = await bench.check(scenario)
    assert observed.heralds == [(a[0] + 11, PSI_PLUS), (a[1] + 11, PSI_MINUS),
                                (a[4] + 11, PSI_PLUS)]
    kinds = [(r.kind, r.attempt) for r in observed.records]
    assert kinds == [(RecordKind.HERALD, 0), (RecordKind.HERALD, 1),
                     (RecordKind.DIAGNOSTIC, 2), (RecordKind.DIAGNOSTIC, 3),
                     (RecordKind.HERALD, 4), (RecordKind.END, 5)]
    assert observed.records[3].cells == cells(PARAMS, w0c0=(2, 5))
    assert observed.counters[0]["multi_clicks"] == [[1, 0], [0, 0]]


@cocotb.test()
async def barrett_kok_two_windows(dut):
    """One click in each of two windows: same detector -> Psi+, different -> Psi-."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((3, 3), (12, 3)), max_attempts=6)
    scenario, s = single_run(config, protocol=BarrettKok(), n_cycles=0)
    a = [s + FIRST + 20 * k for k in range(6)]
    scenario.clicks = sorted([
        (a[0] + 4, A), (a[0] + 13, A),
        (a[1] + 4, A), (a[1] + 13, B),
        (a[2] + 5, B), (a[2] + 12, B),
        (a[3] + 4, A),
        (a[4] + 3, A), (a[4] + 5, A), (a[4] + 13, B),
        (a[5] + 3, B), (a[5] + 14, A),
    ])
    scenario.n_cycles = a[5] + 20
    observed = await bench.check(scenario)
    d = 14 + L
    assert observed.heralds == [(a[0] + d, PSI_PLUS), (a[1] + d, PSI_MINUS),
                                (a[2] + d, PSI_PLUS), (a[5] + d, PSI_MINUS)]
    assert observed.records[1].cells == cells(PARAMS, w0c0=(1, 4), w1c1=(1, 13))


@cocotb.test()
async def stop_on_herald_ends_at_the_herald(dut):
    """Under stop_on_herald, done comes with the herald and no attempt strobe follows."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((5, 4),), stop_on_herald=True)
    scenario, s = single_run(config, n_cycles=0)
    a = [s + FIRST + 20 * k for k in range(3)]
    scenario.clicks = [(a[2] + 6, A), (a[2] + 30, A)]
    scenario.n_cycles = a[2] + 120
    observed = await bench.check(scenario, trace_levels=True)
    assert observed.attempts == a
    assert observed.heralds == [(a[2] + 11, PSI_PLUS)]
    assert observed.dones == [(a[2] + 11, Reason.HERALD)]
    assert [lv[3] for lv in bench.levels[a[2] + 11: a[2] + 13]] == [1, 0]
    assert observed.records[-1] == Record(1, RecordKind.END, Reason.HERALD, 0, 3,
                                          a[2] + 11 - s, cells(PARAMS))


@cocotb.test()
async def timeout_deadline(dut):
    """The run ends exactly `timeout` cycles after start; an attempt starts only if its
    decision (offset e + L) falls before that cycle."""
    bench = CoreBench(dut)
    await bench.reset()
    windows = ((5, 4),)
    writes = table_writes(SingleClick().compile(PARAMS))
    s1 = len(writes) + START
    # Attempt 3 would decide at s1 + FIRST + 60 + 11: not before a timeout of FIRST + 71, but
    # before one of FIRST + 72.
    t1, t2 = FIRST + 71, FIRST + 72
    runs = [RunSpec(s1, CoreConfig(period=20, windows=windows, timeout=t1)),
            RunSpec(s1 + 100, CoreConfig(period=20, windows=windows, timeout=t2))]
    scenario = Scenario(PARAMS, runs, writes, [], Trace.constant(True), Trace.constant(True),
                        s1 + 200)
    observed = await bench.check(scenario)
    s2 = s1 + 100
    assert observed.attempts == [s1 + FIRST + 20 * k for k in range(3)] + \
        [s2 + FIRST + 20 * k for k in range(4)]
    assert observed.dones == [(s1 + t1, Reason.TIMEOUT), (s2 + t2, Reason.TIMEOUT)]
    assert [c["cycles"] for c in observed.counters] == [t1, t2]


@cocotb.test()
async def max_attempts_with_herald_on_the_last(dut):
    """done(MAX_ATTEMPTS) comes at the last attempt's decision, after its herald record."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((5, 4),), max_attempts=3)
    scenario, s = single_run(config, n_cycles=0)
    a = [s + FIRST + 20 * k for k in range(3)]
    scenario.clicks = [(a[2] + 5, B)]
    scenario.n_cycles = a[2] + 40
    observed = await bench.check(scenario)
    assert observed.heralds == [(a[2] + 11, PSI_MINUS)]
    assert observed.dones == [(a[2] + 11, Reason.MAX_ATTEMPTS)]
    assert [(r.seq, r.kind) for r in observed.records] == [(0, RecordKind.HERALD),
                                                           (1, RecordKind.END)]


@cocotb.test()
async def batch_recal_ready_handshake(dut):
    """After `batch` attempts recal rises at the next slot; attempts resume one cycle after a
    rising edge of ready (a level held high does not resume) and recal falls then. A low
    ready at a slot makes the core wait; it resumes one cycle after ready is high again."""
    bench = CoreBench(dut)
    await bench.reset()
    config = CoreConfig(period=10, windows=((2, 2),), batch=3)
    writes = table_writes(SingleClick().compile(PARAMS))
    s = len(writes) + START
    ready = Trace([s + 46, s + 56, s + 91, s + 96, s + 106, s + 109], True)
    scenario = Scenario(PARAMS, [RunSpec(s, config, stop=s + 136)], writes, [], ready,
                        Trace.constant(True), s + 150)
    observed = await bench.check(scenario)
    assert observed.attempts == [s + FIRST, s + FIRST + 10, s + FIRST + 20,   # batch 1
                                 s + 57, s + 67, s + 77,          # ready rose at s+56
                                 s + 97, s + 110, s + 120]        # low at slot s+106
    assert observed.recal_rises == [s + FIRST + 30, s + 87, s + 130]
    assert observed.recal_falls == [s + 57, s + 97, s + 137]      # and with running
    assert observed.dones == [(s + 136, Reason.STOPPED)]


@cocotb.test()
async def stop_cancels_the_attempt_in_flight(dut):
    """A stop strobe ends the run in the same cycle; the attempt in flight gives no herald,
    even when the stop falls on its decision cycle."""
    bench = CoreBench(dut)
    await bench.reset()
    writes = table_writes(SingleClick().compile(PARAMS))
    s1 = len(writes) + START
    config = CoreConfig(period=20, windows=((5, 4),), diagnostic=True)
    s2 = s1 + 100
    runs = [RunSpec(s1, config, stop=s1 + FIRST + 20 + 11),  # on attempt 1's decision cycle
            RunSpec(s2, config, stop=s2 + FIRST + 7)]         # inside attempt 0's window
    clicks = [(s1 + FIRST + 20 + 6, A), (s2 + FIRST + 5, B)]
    scenario = Scenario(PARAMS, runs, writes, clicks, Trace.constant(True),
                        Trace.constant(True), s2 + 60)
    observed = await bench.check(scenario)
    assert observed.heralds == []
    assert observed.dones == [(s1 + FIRST + 31, Reason.STOPPED),
                              (s2 + FIRST + 7, Reason.STOPPED)]
    assert [(r.kind, r.attempt, r.start) for r in observed.records] == [
        (RecordKind.END, 2, FIRST + 31), (RecordKind.END, 1, FIRST + 7)]
    assert observed.counters[1]["clicks_in_window"] == [0, 1]


@cocotb.test()
async def table_writes_up_to_the_start_cycle_reach_the_run(dut):
    """The table is written only while no run is active, directly: a write in the start
    cycle itself, the cycle before it, or between runs is the next run's."""
    bench = CoreBench(dut)
    await bench.reset()
    writes = table_writes(SingleClick().compile(PARAMS))
    s1 = len(writes) + START
    config = CoreConfig(period=20, windows=((5, 4),), max_attempts=3)
    end = FIRST + 40 + 8 + 3            # the third attempt's decision: e = 8, L = 3
    addr_a = 1                          # window 0: A once, B none
    s2 = s1 + 100
    s3 = s2 + 100
    writes += [(s1, addr_a, 3),                         # in run 1's start cycle
               (s1 + end + 1, addr_a, 0), (s2, addr_a, 2),   # after it; in run 2's start
               (s3 - 1, addr_a, 1)]                     # the cycle before run 3's start
    runs = [RunSpec(s1, config), RunSpec(s2, config), RunSpec(s3, config)]
    clicks = [(s + FIRST + 20 * k + 6, A) for s in (s1, s2, s3) for k in range(3)]
    scenario = Scenario(PARAMS, runs, sorted(writes), sorted(clicks), Trace.constant(True),
                        Trace.constant(True), s3 + 80)
    observed = await bench.check(scenario)
    assert observed.dones == [(s + end, Reason.MAX_ATTEMPTS) for s in (s1, s2, s3)]
    assert [o for _, o in observed.heralds] == [3, 3, 3, 2, 2, 2, 1, 1, 1]


@cocotb.test()
async def drops_under_random_backpressure(dut):
    """The core never stalls: with the record stream randomly blocked, records are dropped,
    counted, and the sequence numbers show exactly the gaps."""
    bench = CoreBench(dut)
    await bench.reset()
    rng = np.random.default_rng(7)
    scenario = random_scenario(PARAMS, rng, n_runs=4, attempts_per_run=40, click_rate=0.15,
                               backpressure=0.5)
    # A last short run after the stream is unblocked for good: its END record gets through,
    # so every dropped record shows as a missing sequence number.
    last = scenario.n_cycles
    toggles = [t for t in scenario.events_ready.toggles if t < last - 50]
    if len(toggles) % 2:
        toggles.append(last - 50)
    scenario.events_ready = Trace(toggles, True)
    scenario.runs.append(RunSpec(last, CoreConfig(period=10, windows=((0, 1),), timeout=5)))
    scenario.n_cycles = last + 20
    observed = await bench.check(scenario)
    dropped = sum(c["dropped_records"] for c in observed.counters)
    assert dropped > 0, "the scenario must exercise drops"
    seqs = [r.seq for r in observed.records]
    assert seqs == sorted(seqs)
    missing = set(range(seqs[-1] + 1)) - set(seqs)
    assert len(missing) == dropped
    assert observed.records[-1].kind == RecordKind.END


@cocotb.test()
async def four_channel_single_click(dut):
    """4 detectors x 1 window: exactly one click among four heralds that detector's code."""
    assert PARAMS.n_channels == 4 and PARAMS.n_windows == 1
    bench = CoreBench(dut)
    await bench.reset()
    protocol = SingleClick(outcomes=(1, 2, 3, 1))
    config = CoreConfig(period=16, windows=((4, 4),), max_attempts=6)
    scenario, s = single_run(config, protocol=protocol, n_cycles=0)
    a = [s + FIRST + 16 * k for k in range(6)]
    scenario.clicks = sorted([(a[0] + 4, 0), (a[1] + 5, 1), (a[2] + 6, 2), (a[3] + 7, 3),
                              (a[4] + 4, 2), (a[4] + 6, 3), (a[5] + 8, 1)])
    scenario.n_cycles = a[5] + 30
    observed = await bench.check(scenario)
    assert observed.heralds == [(a[0] + 10, 1), (a[1] + 10, 2), (a[2] + 10, 3), (a[3] + 10, 1)]
    assert observed.counters[0]["clicks_in_window"] == [1, 1, 2, 2]
    assert observed.counters[0]["clicks_out_of_window"] == [0, 1, 0, 0]


@cocotb.test()
async def random_scenarios_match_the_model(dut):
    """Random windows, holdoffs, tables, ready traces, back-pressure and all end reasons."""
    bench = CoreBench(dut)
    await bench.reset()
    scenario = random_scenario(PARAMS, np.random.default_rng(11), n_runs=8,
                               attempts_per_run=30, backpressure=0.1)
    observed = await bench.check(scenario)
    assert {reason for _, reason in observed.dones} == set(Reason)
