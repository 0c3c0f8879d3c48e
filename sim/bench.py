"""Benchmarks that report figures (never timed tests): ``python -m heraldry.sim.bench``.

* ``core``: cycles per second of the Verilated herald core under the differential harness,
  on the random stimulus the differential test uses, and the golden model's attempts/s.
* ``montecarlo``: simulated attempts per second of the link Monte Carlo.
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


BENCHES = {"core": bench_core, "montecarlo": bench_montecarlo}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m heraldry.sim.bench")
    parser.add_argument("names", nargs="*", default=list(BENCHES), choices=list(BENCHES))
    args = parser.parse_args(argv)
    for name in args.names:
        figures = BENCHES[name]()
        print(f"[{name}]")
        for key, value in figures.items():
            print(f"  {key}: {value:,.6g}" if isinstance(value, float) else f"  {key}: {value:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
