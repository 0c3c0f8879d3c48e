"""Benchmarks that report figures (never timed tests): ``python -m heraldry.sim.bench``.

* ``core``: cycles per second of the Verilated herald core under the differential harness,
  on the random stimulus the differential test uses, and the golden model's attempts/s.
* ``montecarlo``: simulated attempts per second of the link Monte Carlo.
* ``vboard``: the virtual board's cycles per second during an emulated run.
* ``vboard-profile``: its instructions per cycle by gateware module and signal (callgrind).
"""

import argparse
import time

import numpy as np

from ..gateware.layouts import CoreParameters
from .differential import run_scenario_verilator
from .scenario import expect, random_scenario


def bench_core(runs=12, scale=40_000, seed=2026):
    params = CoreParameters()
    scenario = random_scenario(params, np.random.default_rng(seed), n_runs=runs,
                               attempts_per_run=scale, click_rate=0.03, backpressure=0.2)
    started = time.perf_counter()
    expected = expect(scenario)
    model_seconds = time.perf_counter() - started
    run_scenario_verilator(scenario, decode_records=False)      # build outside the timing
    run = run_scenario_verilator(scenario, decode_records=False)
    return {
        "cycles": run.cycles,
        "attempts": len(expected.attempts),
        "verilated_cycles_per_second": run.cycles_per_second,
        "harness_wall_seconds": run.wall_seconds,
        "golden_model_attempts_per_second": len(expected.attempts) / model_seconds,
    }


def bench_montecarlo():
    """Simulated attempts/s of the link Monte Carlo, slowest of its benchmark cases."""
    from . import bench_montecarlo, montecarlo
    figures = {}
    for label, link, timing in bench_montecarlo.cases():
        n = 10 ** 8 if "stress" in label else 10 ** 9
        result = montecarlo.throughput(link, timing, n, repeats=2, clicks=True)
        figures[f"{label} attempts/s"] = float(result["attempts_per_s"])
    return figures


def configure_bench_run(dev):
    """The emulated run the virtual board benches time and profile: 100-cycle attempts, one
    window, click probability 1 % per detector and rare dark counts."""
    from ..host.config import Config
    from ..host.emulator import EmulatorSettings, EmulatorWindow
    ns = 1e9 / dev.device.clk_freq
    dev.configure(Config(period_ns=100 * ns, windows_ns=[(40 * ns, 8 * ns)],
                         protocol="single-click"))
    dev.configure_emulator(EmulatorSettings(
        windows=[EmulatorWindow(40 * ns, 4 * ns, {1: 0.01, 2: 0.01})],
        dark_rate_hz=(1e3, 1e3)))


def bench_vboard(attempts=200_000):
    """The virtual board during an emulated run: its own tick rate (cycles per second spent
    ticking the model, by the wall clock and by the process's CPU time, which a busy machine
    disturbs less) and the end-to-end device cycles per wall-clock second."""
    from ..host.controller import Controller
    from .virtual_board import VirtualBoardProcess

    board = VirtualBoardProcess()
    with Controller.open(board.url) as dev:
        configure_bench_run(dev)
        started = time.perf_counter()
        result = dev.run(attempts=attempts)
        wall = time.perf_counter() - started
    cycles, tick_seconds, tick_cpu_seconds = board.stop()
    return {
        "run_cycles": result.counters.cycles,
        "device_cycles_per_wall_second": result.counters.cycles / wall,
        "tick_cycles_per_second": cycles / tick_seconds,
        "tick_cycles_per_cpu_second": cycles / tick_cpu_seconds,
    }


def bench_vboard_profile():
    """Instructions per cycle of the virtual board by module and signal (needs valgrind)."""
    from .vboard_profile import profile_vboard
    return profile_vboard()


BENCHES = {"core": bench_core, "montecarlo": bench_montecarlo, "vboard": bench_vboard,
           "vboard-profile": bench_vboard_profile}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m heraldry.sim.bench")
    parser.add_argument("names", nargs="*", choices=list(BENCHES),
                        default=[name for name in BENCHES if name != "vboard-profile"])
    args = parser.parse_args(argv)
    for name in args.names:
        figures = BENCHES[name]()
        print(f"[{name}]")
        for key, value in figures.items():
            print(f"  {key}: {value:,.6g}" if isinstance(value, float) else f"  {key}: {value:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
