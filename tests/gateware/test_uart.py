"""UART PHY on Verilator with cocotb: 3 Mbaud from 12 MHz-derived clocks, the far end's
baud rate off by -2 %, 0 and +2 %."""

from pathlib import Path

import pytest
from amaranth.back import verilog

from heraldry.gateware.uart import UART, divisor_for
from heraldry.sim.cocotb_runner import run_bench

HERE = Path(__file__).parent

#: (clock in Hz, name): 48 MHz is the 12 MHz oscillator x 4; 12 MHz is the oscillator itself.
CLOCKS = [(48_000_000, "48MHz"), (12_000_000, "12MHz")]
CASES = [(clk, name, mismatch, case)
         for clk, name in CLOCKS
         for mismatch in (-0.02, 0.0, 0.02)
         for case in ("receive_at_mismatch", "transmit_at_mismatch")]
CASES += [(48_000_000, "48MHz", 0.0, "framing_error_and_overrun_are_counted")]


def test_divisor():
    assert divisor_for(48_000_000, 3_000_000) == 16
    assert divisor_for(12_000_000, 3_000_000) == 4
    with pytest.raises(ValueError, match="too slow"):
        divisor_for(8_000_000, 3_000_000)
    with pytest.raises(ValueError, match="off"):
        divisor_for(50_000_000, 3_000_000)       # 16.7 -> 17: 2 % off


@pytest.mark.parametrize("clk,clk_name,mismatch,case", CASES,
                         ids=[f"{n}-{m:+.0%}-{c}" for _, n, m, c in CASES])
def test_uart_bench(clk, clk_name, mismatch, case, tmp_path_factory):
    text = verilog.convert(UART(divisor_for(clk, 3_000_000)), name="uart_top")
    run_bench(text, "uart_top", "bench_uart", case,
              test_dir=tmp_path_factory.mktemp(f"uart-{clk_name}-{case}"), module_dir=HERE,
              extra_env={"UART_CLK_PS": str(2 * round(1e12 / clk / 2)), "UART_BAUD": "3e6",
                         "UART_MISMATCH": str(mismatch)})
