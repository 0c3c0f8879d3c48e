"""The board front-end: its latency constant, and the cocotb benches of pins -> core."""

import dataclasses
import json
from pathlib import Path

import pytest

from heraldry.boards.frontend import FRONTEND_LATENCY, OUTPUT_LATENCY, SYNC_STAGES
from heraldry.boards.simtop import pin_top_verilog
from heraldry.gateware.layouts import CoreParameters
from heraldry.sim.cocotb_runner import run_bench

HERE = Path(__file__).parent
PARAMS = CoreParameters(n_channels=2, n_windows=2, n_outputs=4)
BENCHES = ["pin_to_core_latency", "window_offsets_refer_to_the_pins",
           "ready_pin_to_attempt_pin"]


def test_latency_constants():
    assert SYNC_STAGES == 2
    assert FRONTEND_LATENCY == 3
    assert OUTPUT_LATENCY == 2


@pytest.mark.parametrize("testcase", BENCHES)
def test_frontend_bench(testcase, tmp_path_factory):
    verilog_text, _ = pin_top_verilog(PARAMS)
    fields = {f.name: getattr(PARAMS, f.name) for f in dataclasses.fields(PARAMS)}
    run_bench(verilog_text, "board_pins", "bench_frontend", testcase,
              test_dir=tmp_path_factory.mktemp(testcase), module_dir=HERE,
              extra_env={"HERALDRY_CORE_PARAMS": json.dumps(fields)})
