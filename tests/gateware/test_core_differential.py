"""Differential test: millions of cycles of random stimulus through the Verilated core and
the golden model; every attempt, herald, end, recal edge, record and counter must agree."""

import numpy as np
import pytest

from heraldry.gateware.layouts import CoreParameters, Reason
from heraldry.sim.differential import run_scenario_verilator
from heraldry.sim.scenario import expect, random_scenario

CASES = [
    # shape, seed, runs, attempts per run scale, click rate, back-pressure, minimum attempts
    (CoreParameters(n_channels=2, n_windows=2), 2026, 44, 40_000, 0.03, 0.2, 1_000_000),
    (CoreParameters(n_channels=4, n_windows=1, n_outputs=2), 7, 12, 30_000, 0.05, 0.4,
     150_000),
    # The iCEBreaker's shape with 24-bit counts: the attempt index (a 12-bit low part) and
    # the cycle count (12-bit) carry into their high parts thousands of times per run.
    (CoreParameters(n_channels=2, n_windows=1, n_outputs=2, offset_width=14, count_width=24,
                    seq_width=16), 5, 16, 20_000, 0.03, 0.2, 100_000),
]


@pytest.mark.parametrize("params,seed,runs,scale,click_rate,backpressure,minimum", CASES,
                         ids=["2ch2w-1e6", "4ch1w", "2ch1w-24bit"])
def test_verilated_core_matches_golden_model(params, seed, runs, scale, click_rate,
                                             backpressure, minimum, record_property):
    scenario = random_scenario(params, np.random.default_rng(seed), n_runs=runs,
                               attempts_per_run=scale, click_rate=click_rate,
                               backpressure=backpressure)
    expected = expect(scenario)
    run = run_scenario_verilator(scenario, decode_records=False)
    observed = run.observed
    assert len(expected.attempts) >= minimum
    # Records are compared as the packed bits the gateware emits.
    expected_bits = [record.pack(params) for record in expected.records]
    mismatch = next((i for i, (a, b) in enumerate(zip(run.records_raw, expected_bits))
                     if a != b), None)
    assert mismatch is None and len(run.records_raw) == len(expected_bits), (
        f"record {mismatch} differs (of {len(expected_bits)} expected, "
        f"{len(run.records_raw)} observed)")
    observed.records = expected.records        # compared above, bit for bit
    observed.assert_equal(expected, "Verilated core vs golden model")
    # The stimulus must exercise what it claims to.
    assert {reason for _, reason in observed.dones} == set(Reason)
    assert sum(c["dropped_records"] for c in observed.counters) > 0
    assert sum(sum(c["afterpulses"]) for c in observed.counters) > 0
    assert len(observed.recal_rises) > 0 and len(observed.heralds) > 0
    record_property("attempts", len(expected.attempts))
    record_property("cycles", run.cycles)
    record_property("verilated_cycles_per_second", round(run.cycles_per_second))
    print(f"\n{params.n_channels}ch{params.n_windows}w: {len(expected.attempts)} attempts, "
          f"{run.cycles} cycles, {len(expected.records)} records, "
          f"{run.cycles_per_second / 1e6:.2f} M cycles/s Verilated")
