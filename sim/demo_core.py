"""``heraldry demo``: heralding in simulation, checked against the golden model.

The Verilated herald core runs a single-click experiment; photon clicks are drawn per
attempt (each node's photon detected with probability alpha * eta, landing at a fixed
offset plus jitter in the detection window) and dark counts fall uniformly in time. Every
herald, record and counter is compared with the golden model before the summary is shown.
"""

import argparse
import math
import time

import numpy as np

from ..gateware.layouts import CoreParameters
from ..host.protocols import SingleClick
from .golden import CoreConfig, Trace
from .scenario import RunSpec, Scenario, expect, table_at_writes

__all__ = ["add_parser", "run_demo"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo", help="herald remote entanglement in simulation",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clock-mhz", type=float, default=200.0, help="device clock (MHz)")
    parser.add_argument("--period-ns", type=float, default=5000.0, help="attempt period (ns)")
    parser.add_argument("--window-ns", type=float, default=40.0, help="detection window (ns)")
    parser.add_argument("--alpha", type=float, default=0.1, help="bright-state population")
    parser.add_argument("--eta", type=float, default=5e-3,
                        help="detection efficiency of each node's photon")
    parser.add_argument("--dark-hz", type=float, default=20.0, help="dark-count rate/detector")
    parser.add_argument("--attempts", type=int, default=50_000, help="attempts to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.set_defaults(handler=lambda args: run_demo(args))


def _clicks(rng, n_attempts, first_attempt, period, window, p_photon, p_dark_cycle, n_ch):
    """Click edges for ``n_attempts`` attempts starting at cycle ``first_attempt``."""
    edges = []
    # Photons: each node emits into the window with probability p_photon; the beam splitter
    # sends it to either detector with probability 1/2.
    for node in range(2):
        hit = np.flatnonzero(rng.random(n_attempts) < p_photon)
        jitter = rng.integers(0, max(1, window[1] // 2), size=len(hit))
        cycles = first_attempt + hit * period + window[0] + jitter
        channels = rng.integers(0, n_ch, size=len(hit))
        edges += list(zip(cycles.tolist(), channels.tolist()))
    total = n_attempts * period
    for channel in range(n_ch):
        n = rng.binomial(total, p_dark_cycle)
        edges += [(int(t), channel) for t in first_attempt + rng.integers(0, total, size=n)]
    # One edge per channel and cycle, at least 2 cycles apart (the input must fall between).
    edges = sorted(set(edges))
    kept, last = [], {}
    for t, c in edges:
        if t - last.get(c, -10) >= 2:
            kept.append((t, c))
            last[c] = t
    return kept


def run_demo(args) -> int:
    from .differential import run_scenario_verilator

    params = CoreParameters()
    clock = args.clock_mhz * 1e6
    period = round(args.period_ns * 1e-9 * clock)
    window = (round(100e-9 * clock), max(1, round(args.window_ns * 1e-9 * clock)))
    config = CoreConfig(period=period, windows=(window,), max_attempts=args.attempts,
                        outputs=((0, max(1, window[0] // 2)),))
    rng = np.random.default_rng(args.seed)
    table = SingleClick().compile(params)
    writes = [(i, addr, v) for i, (addr, v) in enumerate((a, v) for a, v in enumerate(table)
                                                          if v)]
    start = len(writes) + 2
    p_photon = args.alpha * args.eta
    p_dark = args.dark_hz / clock
    clicks = _clicks(rng, args.attempts, start + 1, period, window, p_photon, p_dark, 2)
    n_cycles = start + 1 + args.attempts * period + period
    scenario = Scenario(params, [RunSpec(start, config)], writes, clicks,
                        Trace.constant(True), Trace.constant(True), n_cycles)
    print(f"heraldry demo: single-click, {args.attempts} attempts of {args.period_ns:.0f} ns "
          f"at {args.clock_mhz:.0f} MHz, window {args.window_ns:.0f} ns, alpha={args.alpha}, "
          f"eta={args.eta}")
    print("building the Verilated core (cached after the first run) ...", flush=True)
    started = time.perf_counter()
    run = run_scenario_verilator(scenario)
    model = expect(scenario)
    run.observed.assert_equal(model, "Verilated core vs golden model")
    counters = run.observed.counters[0]
    heralds = sum(counters["heralds"])
    attempts = counters["attempts"]
    p = heralds / attempts
    err = math.sqrt(p * (1 - p) / attempts)
    device_seconds = counters["cycles"] / clock
    predicted = 1 - (1 - p_photon) ** 2      # at least one photon: leading-order herald prob.
    print(f"attempts {attempts}, heralds {heralds} (psi+ {counters['heralds'][0]}, "
          f"psi- {counters['heralds'][1]}), double clicks rejected "
          f"{counters['multi_clicks'][0][0] + counters['multi_clicks'][0][1]}")
    print(f"success probability {p:.3e} +- {err:.1e} per attempt (photon-only expectation "
          f"~{predicted:.3e}); rate {heralds / device_seconds:.1f} /s in device time")
    for record in run.observed.records[:5]:
        if record.outcome:
            print(f"  herald: attempt {record.attempt}, outcome {record.outcome}, "
                  f"first click at offset {max(f for _, f in record.cells)} cycles")
    print(f"every herald, record and counter equals the golden model; "
          f"{run.cycles / run.seconds / 1e6:.1f} M cycles/s, "
          f"{time.perf_counter() - started:.1f} s wall")
    return 0
