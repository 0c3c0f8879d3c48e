"""HeraldCore in Amaranth's own simulator: its external contract (port names, layouts,
limits) and random scenarios compared with the golden model."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.lib import stream

from heraldry.gateware import CoreParameters, HeraldCore, Reason, RecordKind
from heraldry.gateware.layouts import RUN_START_LATENCY
from heraldry.sim.drivers import run_scenario_amaranth
from heraldry.sim.golden import CoreConfig, Trace
from heraldry.sim.scenario import RunSpec, Scenario, expect, random_scenario


def test_contract_port_names_and_layouts():
    core = HeraldCore()
    members = core.signature.members
    for name in ("config", "table", "start", "stop", "ready", "clicks", "attempt", "gate",
                 "trig", "herald", "outcome", "running", "recal", "done", "reason", "events",
                 "counters"):
        assert name in members, name
    config = core.config.shape()
    assert [name for name, _ in config] == ["period", "windows", "outputs", "holdoff",
                                            "stop_on_herald", "max_attempts", "timeout",
                                            "batch", "diagnostic"]
    assert [name for name, _ in config["windows"].shape.elem_shape] == ["start", "length"]
    assert [name for name, _ in config["outputs"].shape.elem_shape] == ["start", "stop"]
    assert [name for name, _ in core.table.shape()] == ["addr", "data", "en"]
    assert isinstance(members["events"].signature, stream.Signature)
    counters = [name for name, _ in core.counters.shape()]
    assert counters == ["attempts", "heralds", "clicks_in_window", "clicks_out_of_window",
                        "multi_clicks", "afterpulses", "dropped_records", "cycles"]
    assert HeraldCore.latency == 2 <= 3
    assert HeraldCore.start_latency == 1 and HeraldCore.stop_latency == 0
    assert HeraldCore.run_start_latency == RUN_START_LATENCY == 4
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
    assert observed.dones == [(31 + 3 + 2, Reason.MAX_ATTEMPTS)]
    assert observed.records[-1].kind == RecordKind.END
    observed.assert_equal(expect(scenario))


def test_start_while_running_is_ignored():
    """A start strobe during a run changes nothing: one end, the first config's attempts."""
    params = CoreParameters()
    config = CoreConfig(period=10, windows=((2, 2),), timeout=40)
    runs = [RunSpec(3, config), RunSpec(20, CoreConfig(period=7, windows=((1, 1),)))]
    scenario = Scenario(params, runs, [], [], Trace.constant(True), Trace.constant(True), 80)
    with pytest.raises(ValueError, match="previous one runs until cycle 43"):
        expect(scenario)
    observed = run_scenario_amaranth(scenario)
    assert observed.dones == [(43, Reason.TIMEOUT)]
    # From 3 + K + 1 every 10 cycles while x + e + L < 3 + 40 (e = 3, L = 2): x <= 37.
    first = 3 + RUN_START_LATENCY + 1
    assert observed.attempts == list(range(first, 38, 10)) == [8, 18, 28]
