"""HeraldCore in Amaranth's own simulator: its external contract (port names, layouts,
limits) and random scenarios compared with the golden model."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import stream
from amaranth.sim import Simulator

from heraldry.gateware import CoreParameters, HeraldCore, Reason, RecordKind
from heraldry.gateware.core import _TableMemory
from heraldry.gateware.layouts import RECORD_LATENCY, RUN_START_LATENCY
from heraldry.host.protocols import SingleClick
from heraldry.sim.drivers import run_scenario_amaranth
from heraldry.sim.golden import CoreConfig, Trace
from heraldry.sim.scenario import RunSpec, Scenario, expect, random_scenario


def test_contract_port_names_and_layouts():
    core = HeraldCore()
    members = core.signature.members
    for name in ("config", "table", "start", "stop", "ready", "clicks", "attempt", "gate",
                 "trig", "herald", "outcome", "running", "recal", "done", "reason", "events",
                 "counts", "counters_clear"):
        assert name in members, name
    config = core.config.shape()
    assert [name for name, _ in config] == ["period", "windows", "outputs", "holdoff",
                                            "stop_on_herald", "max_attempts", "timeout",
                                            "batch", "diagnostic"]
    assert [name for name, _ in config["windows"].shape.elem_shape] == ["start", "length"]
    assert [name for name, _ in config["outputs"].shape.elem_shape] == ["start", "stop"]
    assert [name for name, _ in core.table.shape()] == ["addr", "data", "en"]
    assert isinstance(members["events"].signature, stream.Signature)
    counters = [name for name, _ in core.params.counters_layout()]
    assert counters == ["attempts", "heralds", "clicks_in_window", "clicks_out_of_window",
                        "multi_clicks", "afterpulses", "dropped_records", "cycles"]
    # The core gives each counter's step per cycle, in the same fields.
    assert [name for name, _ in core.counts.shape()] == counters
    assert HeraldCore.latency == 3
    assert HeraldCore.start_latency == 1 and HeraldCore.stop_latency == 0
    assert HeraldCore.run_start_latency == RUN_START_LATENCY == 4
    assert HeraldCore.record_latency == RECORD_LATENCY == 2
    assert {r.name for r in Reason} == {"HERALD", "TIMEOUT", "MAX_ATTEMPTS", "STOPPED"}
    Fragment.get(core, None)


def test_counters_do_not_wrap_within_a_day_at_200_mhz():
    # At one event per cycle, 24 h at 200 MHz is 1.728e13 events.
    params = CoreParameters()
    assert 2 ** params.count_width > 24 * 3600 * 200e6


@pytest.mark.parametrize("shape", [(2, 2), (4, 1), (1, 4), (3, 1), (1, 1)])
def test_supported_shapes_elaborate(shape):
    channels, windows = shape
    core = HeraldCore(n_channels=channels, n_windows=windows, n_outputs=1)
    Fragment.get(core, None)
    assert core.params.table_depth == 4 ** (channels * windows)


@pytest.mark.parametrize("shape", [(4, 2), (3, 2), (5, 1)])
def test_larger_shapes_are_rejected_with_the_limit(shape):
    channels, windows = shape
    with pytest.raises(ValueError, match=r"limit is 8 bits \(n_windows \* n_channels <= 4\)"):
        HeraldCore(n_channels=channels, n_windows=windows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scenarios_match_model(seed):
    params = CoreParameters()
    scenario = random_scenario(params, np.random.default_rng(seed), n_runs=4,
                               attempts_per_run=12, backpressure=0.4, click_rate=0.1)
    observed = run_scenario_amaranth(scenario)
    observed.assert_equal(expect(scenario), f"seed {seed}")


def test_ready_low_at_run_start_waits_for_level():
    """A run started while ready is low waits; the first attempt starts one cycle after
    ready is seen high (a level, not an edge)."""
    params = CoreParameters()
    config = CoreConfig(period=10, windows=((2, 2),), max_attempts=2)
    scenario = Scenario(params, [RunSpec(3, config)], [], [], Trace([20], False),
                        Trace.constant(True), 60)
    observed = run_scenario_amaranth(scenario)
    assert observed.attempts == [21, 31]
    assert observed.dones == [(31 + 3 + 3, Reason.MAX_ATTEMPTS)]      # e = 3, L = 3
    assert observed.records[-1].kind == RecordKind.END
    observed.assert_equal(expect(scenario))


def test_start_while_running_is_ignored():
    """A start strobe during a run changes nothing: one end, the run's attempts."""
    params = CoreParameters()
    config = CoreConfig(period=10, windows=((2, 2),), timeout=40)
    runs = [RunSpec(3, config), RunSpec(20, config)]
    scenario = Scenario(params, runs, [], [], Trace.constant(True), Trace.constant(True), 80)
    with pytest.raises(ValueError, match="previous one runs until cycle 43"):
        expect(scenario)
    observed = run_scenario_amaranth(scenario)
    assert observed.dones == [(43, Reason.TIMEOUT)]
    # From 3 + K + 1 every 10 cycles while x + e + L < 3 + 40 (e = 3, L = 3): x <= 36.
    first = 3 + RUN_START_LATENCY + 1
    assert observed.attempts == list(range(first, 37, 10)) == [8, 18, 28]


@pytest.mark.parametrize("timeout", [1, 2, 3])
def test_shortest_timeouts(timeout):
    """A run times out exactly `timeout` cycles after its start, even before any attempt."""
    params = CoreParameters()
    config = CoreConfig(period=10, windows=((2, 2),), timeout=timeout)
    scenario = Scenario(params, [RunSpec(5, config)], [], [], Trace.constant(True),
                        Trace.constant(True), 20)
    observed = run_scenario_amaranth(scenario)
    assert observed.dones == [(5 + timeout, Reason.TIMEOUT)]
    assert observed.attempts == []
    observed.assert_equal(expect(scenario))


def test_table_writes_up_to_the_start_cycle_reach_the_run():
    """The table is written directly: writes in the cycles just before the start and in the
    start cycle itself are the run's, and so are writes between two runs, up to the next
    start cycle."""
    params = CoreParameters()
    table = SingleClick().compile(params)
    writes = [(1 + i, a, v) for i, (a, v) in enumerate((a, v) for a, v in enumerate(table) if v)]
    s1 = len(writes) + 10
    entry = 1                                   # window 0: one click on channel 0
    writes += [(s1 - 2, entry, 3), (s1 - 1, entry, 1), (s1, entry, 2)]
    config = CoreConfig(period=12, windows=((2, 2),), max_attempts=2)
    first = RUN_START_LATENCY + 1
    e1 = s1 + first + 12 + 3 + 3                # the second attempt's decision: e = 3, L = 3
    s2 = e1 + 2
    writes += [(e1 + 1, entry, 3), (s2, entry, 1)]
    clicks = [(s + first + 12 * k + 2, 0) for s in (s1, s2) for k in range(2)]
    scenario = Scenario(params, [RunSpec(s1, config), RunSpec(s2, config)], sorted(writes),
                        clicks, Trace.constant(True), Trace.constant(True), s2 + 50)
    observed = run_scenario_amaranth(scenario)
    observed.assert_equal(expect(scenario))
    assert observed.dones == [(e1, Reason.MAX_ATTEMPTS), (s2 + first + 12 + 6,
                                                          Reason.MAX_ATTEMPTS)]
    assert [o for _, o in observed.heralds] == [2, 2, 1, 1]


def test_model_rejects_table_writes_while_a_run_is_active():
    """The oracle states the contract: a table write in s + 1 .. E is outside it (in s and
    after E it is legal)."""
    params = CoreParameters()
    config = CoreConfig(period=12, windows=((2, 2),), timeout=30)
    legal = Scenario(params, [RunSpec(10, config)], [(10, 1, 1), (41, 1, 2)], [],
                     Trace.constant(True), Trace.constant(True), 60)
    assert expect(legal).dones == [(40, Reason.TIMEOUT)]
    for t in (11, 40):
        scenario = Scenario(params, [RunSpec(10, config)], [(t, 1, 2)], [],
                            Trace.constant(True), Trace.constant(True), 60)
        with pytest.raises(ValueError, match=f"table write to entry 1 in cycle {t}, while "
                                             f"the run started in cycle 10 is active"):
            expect(scenario)


def test_config_is_taken_in_the_start_cycle():
    """The configuration on the port in the start cycle is the run's, whatever came before
    it (up to the cycle before); it then holds until the run ends, as the contract asks.
    A record leaves RECORD_LATENCY = 2 cycles after its decision."""
    params = CoreParameters()
    dut = HeraldCore(params=params)
    wanted = CoreConfig(period=10, windows=((2, 2),), max_attempts=1)
    other = CoreConfig(period=7, windows=((1, 5),), max_attempts=3, timeout=9)
    start = 4
    seen = {"attempts": [], "dones": [], "valid": []}

    async def testbench(ctx):
        ctx.set(dut.ready, 1)
        ctx.set(dut.events.ready, 1)
        for t in range(40):
            ctx.set(dut.config.as_value(), (wanted if t >= start else other).pack(params))
            ctx.set(dut.start, t == start)
            if ctx.get(dut.attempt):
                seen["attempts"].append(t)
            if ctx.get(dut.done):
                seen["dones"].append((t, Reason(ctx.get(dut.reason.as_value()))))
            if ctx.get(dut.events.valid):
                seen["valid"].append(t)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    x = start + RUN_START_LATENCY + 1                   # 9
    assert seen["attempts"] == [x] == [9]
    assert seen["dones"] == [(x + 3 + 3, Reason.MAX_ATTEMPTS)] == [(15, Reason.MAX_ATTEMPTS)]
    assert seen["valid"] == [15 + 2]                    # the END record, stream always ready


class _ECP5:
    family = "ecp5"


@pytest.mark.parametrize("platform", [None, _ECP5()], ids=["generic", "ecp5"])
def test_table_memory_reads_the_row_of_the_cycle_before(platform):
    """Writes, and read_data holding the entry at read_addr of the cycle before (the address
    holding), on the generic read port and on the ECP5's LUT RAM alike."""
    table = _TableMemory(8, 2)
    rows = {}
    seen = []

    async def testbench(ctx):
        # Entries in three of the ECP5's four parts; a write without its enable changes
        # nothing, a later write replaces an earlier one.
        for addr, data, en in ((5, 1, 1), (5, 2, 0), (0xC9, 3, 1), (0xC9, 1, 1), (0x45, 2, 1)):
            ctx.set(table.write_addr, addr)
            ctx.set(table.write_data, data)
            ctx.set(table.write_en, en)
            await ctx.tick()
            if en:
                rows[addr] = data
        ctx.set(table.write_en, 0)
        for addr in (5, 0xC9, 0, 0x45, 0xC9):
            ctx.set(table.read_addr, addr)
            await ctx.tick()
            seen.append((addr, ctx.get(table.read_data)))

    sim = Simulator(Fragment.get(table, platform))
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert rows == {5: 1, 0xC9: 1, 0x45: 2}
    assert seen == [(5, 1), (0xC9, 1), (0, 0), (0x45, 2), (0xC9, 1)]


def test_ecp5_table_is_lut_ram(synth_ecp5):
    """On ECP5 the table is LUT RAM read into a register, so that the lookup stays among the
    click logic's flip-flops instead of reaching a block RAM site."""
    cells = {cell["type"] for cell in synth_ecp5(_TableMemory(8, 2))["cells"].values()}
    assert "TRELLIS_DPR16X4" in cells and "DP16KD" not in cells


@pytest.mark.parametrize("shape", [(2, 2), (4, 1), (1, 4)])
def test_windows_and_outputs_at_the_first_offsets(shape):
    """Windows and outputs starting and ending at offsets 0 .. 3 (offset 0 being the attempt
    strobe's own cycle), clicks at offsets 0 .. 4, herald ends included."""
    channels, windows = shape
    params = CoreParameters(n_channels=channels, n_windows=windows, n_outputs=2)
    table = SingleClick().compile(params)
    writes = [(1 + i, a, v) for i, (a, v) in enumerate((a, v) for a, v in enumerate(table) if v)]
    rng = np.random.default_rng(sum(shape))
    runs, clicks, t = [], [], len(writes) + 5
    for first_window in ((0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (0, 0)):
        for stop_on_herald in (False, True):
            spans = [first_window] + [(int(rng.integers(0, 3)), int(rng.integers(0, 3)))
                                      for _ in range(windows - 1)]
            outputs = ((0, 1), (int(rng.integers(0, 3)), int(rng.integers(0, 4))))
            config = CoreConfig(period=8, windows=tuple(spans), outputs=outputs,
                                max_attempts=6, stop_on_herald=stop_on_herald)
            x = t + RUN_START_LATENCY + 1
            for k in range(6):
                for offset in (0, 1, 2, 4):
                    if rng.random() < 0.3:
                        clicks.append((x + 8 * k + offset, int(rng.integers(0, channels))))
            runs.append(RunSpec(t, config))
            t += RUN_START_LATENCY + 1 + 6 * 8 + 5
    clicks = sorted(set(clicks))
    clicks = [(c, ch) for i, (c, ch) in enumerate(clicks)
              if not any(c2 == c - 1 and ch2 == ch for c2, ch2 in clicks[:i])]
    scenario = Scenario(params, runs, writes, clicks, Trace.constant(True),
                        Trace.constant(True), t + 10)
    observed = run_scenario_amaranth(scenario)
    observed.assert_equal(expect(scenario), f"shape {shape}")
    assert observed.heralds, "the scenario must herald"
