"""Differential runs of the Verilated herald core against the golden model.

The core is Verilated with a small C++ stimulus player (``core_harness.cpp``) that ticks the
model as fast as it can; scenarios go in as a text stimulus and come out as
:class:`~heraldry.sim.scenario.Observed`, to be compared with :func:`~heraldry.sim.scenario.expect`.
Builds are cached under :func:`heraldry.sim.toolchain.build_root` by a hash of the Verilog
and the harness source.
"""

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..gateware.layouts import Reason
from .cocotb_runner import build_program
from .golden import Record
from .scenario import Observed, counters_to_dict, scenario_inputs
from .verilog import core_verilog

__all__ = ["build_core_harness", "run_scenario_verilator", "HarnessRun"]

HARNESS_SOURCE = Path(__file__).with_name("core_harness.cpp")


def build_core_harness(params) -> Path:
    """Build (or reuse) the Verilated core with the stimulus player; returns the binary."""
    verilog_text, _ = core_verilog(params)
    return build_program(verilog_text, "herald_core", HARNESS_SOURCE, kind="harness")


def write_stimulus(scenario, path):
    """The scenario as the harness's text stimulus."""
    inputs = scenario_inputs(scenario)
    lines = [f"N {scenario.n_cycles}"]
    for t in sorted(inputs):
        changes = inputs[t]
        if "config" in changes:
            lines.append(f"{t} C {changes['config']:x}")
        if "ready" in changes:
            lines.append(f"{t} R {changes['ready']}")
        if "events_ready" in changes:
            lines.append(f"{t} E {changes['events_ready']}")
        if "start" in changes:
            lines.append(f"{t} S")
        if "stop" in changes:
            lines.append(f"{t} P")
        if "table" in changes:
            lines.append(f"{t} T {changes['table'][0]} {changes['table'][1]}")
        if "clicks" in changes:
            lines.append(f"{t} K {changes['clicks']}")
    Path(path).write_text("\n".join(lines) + "\n")


@dataclass
class HarnessRun:
    """What one harness run produced, with its speed."""
    observed: Observed
    records_raw: list          # transferred records as packed ints
    cycles: int
    seconds: float             # time spent ticking the model (the harness's own clock)
    wall_seconds: float        # including process start and stimulus parsing

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else float("inf")


def run_scenario_verilator(scenario, *, decode_records=True) -> HarnessRun:
    """Run ``scenario`` on the Verilated core; returns the observation and the speed."""
    binary = build_core_harness(scenario.params)
    params = scenario.params
    with tempfile.TemporaryDirectory(prefix="heraldry-diff-") as tmp:
        stimulus, output = Path(tmp) / "stimulus.txt", Path(tmp) / "output.txt"
        write_stimulus(scenario, stimulus)
        started = time.perf_counter()
        done = subprocess.run([str(binary), str(stimulus), str(output)], capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"harness failed (exit {done.returncode}): {done.stderr}")
        speed = re.search(r"cycles (\d+) seconds ([0-9.]+)", done.stderr)
        observed = Observed()
        raw = []
        with open(output) as lines:
            for line in lines:
                op, *args = line.split()
                t = int(args[0])
                if op == "A":
                    observed.attempts.append(t)
                elif op == "H":
                    observed.heralds.append((t, int(args[1])))
                elif op == "D":
                    observed.dones.append((t, Reason(int(args[1]))))
                elif op == "U":
                    observed.recal_rises.append(t)
                elif op == "F":
                    observed.recal_falls.append(t)
                elif op == "V":
                    raw.append(int(args[1], 16))
                elif op == "Q":
                    observed.counters.append(counters_to_dict(params, int(args[1], 16)))
    if decode_records:
        observed.records = [Record.unpack(params, bits) for bits in raw]
    return HarnessRun(observed, raw, int(speed.group(1)), float(speed.group(2)), wall)
