"""Cycle-exact cocotb benches of the board's pin-to-core path: IO registers, the 2-flop
synchroniser and HeraldCore together (:class:`heraldry.boards.simtop.PinSimTop`).

Cycle 0 is the first cycle after reset; cycle t spans the rising edges t and t+1. A pin
"driven in cycle t" changes just after edge t. The expected cycles below are written out from
the front-end's contract: S = 3 (IO register + 2 synchroniser flops), output register 1.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from heraldry.boards.frontend import FRONTEND_LATENCY, OUTPUT_LATENCY
from heraldry.gateware.layouts import (HERALD_LATENCY, RUN_START_LATENCY, START_LATENCY,
                                      CoreParameters, RecordKind)
from heraldry.host.protocols import SingleClick
from heraldry.sim.golden import CoreConfig, Record

PARAMS = CoreParameters(**json.loads(os.environ.get("HERALDRY_CORE_PARAMS", "{}")))
CLOCK_NS = 10
S = 3               # restated, so that the bench pins the constants down
OUT = 2
K = 4               # the core's RUN_START_LATENCY: start to the first cycle ready is sampled

assert FRONTEND_LATENCY == S and OUTPUT_LATENCY == OUT and RUN_START_LATENCY == K


class PinBench:
    """Drives pins per cycle and records every output per cycle."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = -1
        self.drives = {}          # cycle -> {port name: value}
        self.samples = []         # per cycle: dict of outputs
        self.records = []         # (cycle, Record)
        Clock(dut.clk, CLOCK_NS, unit="ns").start()

    def drive(self, cycle, **values):
        self.drives.setdefault(cycle, {}).update(values)

    def pulse(self, cycle, name, value):
        """``name`` = ``value`` during ``cycle`` only."""
        self.drive(cycle, **{name: value})
        self.drive(cycle + 1, **{name: 0})

    async def reset(self):
        dut = self.dut
        for name in ("clicks_pin", "ready_pin", "start", "stop", "table_en", "table_addr",
                     "table_data", "cfg"):
            getattr(dut, name).value = 0
        dut.events_ready.value = 1
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        await RisingEdge(dut.clk)
        dut.rst.value = 0

    async def run(self, n_cycles):
        dut = self.dut
        for _ in range(n_cycles):
            self.cycle += 1
            for name, value in self.drives.get(self.cycle, {}).items():
                getattr(dut, name).value = value
            await ReadOnly()
            sample = {name: int(getattr(dut, name).value) for name in (
                "core_clicks", "core_ready", "core_attempt", "core_herald", "attempt_pin",
                "herald_pin", "gate_pin", "trig_pin", "running", "done")}
            self.samples.append(sample)
            if int(dut.events_valid.value):
                bits = dut.events_payload.value.to_unsigned()
                self.records.append((self.cycle, Record.unpack(PARAMS, bits)))
            await RisingEdge(dut.clk)

    def cycles_where(self, name, bit=None):
        out = []
        for t, sample in enumerate(self.samples):
            value = sample[name]
            if (value >> bit) & 1 if bit is not None else value:
                out.append(t)
        return out


@cocotb.test()
async def pin_to_core_latency(dut):
    """A pin level driven in cycle t is seen by the core in cycle t + S, on every input, and a
    one-cycle pulse stays one cycle long."""
    bench = PinBench(dut)
    await bench.reset()
    bench.pulse(5, "clicks_pin", 0b01)
    bench.pulse(9, "clicks_pin", 0b10)
    bench.pulse(14, "clicks_pin", 0b11)
    bench.drive(20, ready_pin=1)
    bench.drive(27, ready_pin=0)
    await bench.run(40)
    assert bench.cycles_where("core_clicks", 0) == [5 + S, 14 + S], bench.cycles_where(
        "core_clicks", 0)
    assert bench.cycles_where("core_clicks", 1) == [9 + S, 14 + S], bench.cycles_where(
        "core_clicks", 1)
    assert bench.cycles_where("core_ready") == list(range(20 + S, 27 + S)), \
        bench.cycles_where("core_ready")


def _write_table(bench, first_cycle, table):
    cycle = first_cycle
    for addr, value in enumerate(table):
        if value:
            bench.drive(cycle, table_addr=addr, table_data=value, table_en=1)
            cycle += 1
    bench.drive(cycle, table_en=0)
    return cycle


@cocotb.test()
async def window_offsets_refer_to_the_pins(dut):
    """Window offsets seen from the pins: a click at the detector pin d cycles after the
    attempt pin rose lands at core offset d + OUT + S. Clicks exactly on the compensated
    window edges are inside, one cycle beyond either edge outside; records carry the core
    offset; the herald pin rises at e + L + OUT after the core's attempt."""
    bench = PinBench(dut)
    await bench.reset()
    dut_params = PARAMS
    period, w_start, w_len = 40, 10, 5
    config = CoreConfig(period=period, windows=((w_start, w_len),), outputs=((2, 4),),
                        max_attempts=4, diagnostic=True)
    table = SingleClick().compile(dut_params)
    start_cycle = _write_table(bench, 2, table) + 1
    bench.drive(0, cfg=config.pack(dut_params), ready_pin=1)
    bench.pulse(start_cycle, "start", 1)
    # ready was raised at the pin in cycle 0, so the core has it from S on; the run starts
    # later, samples ready K cycles after its start and attempts START_LATENCY after that.
    first_attempt = start_cycle + K + START_LATENCY
    attempt_pins = [first_attempt + k * period + OUT for k in range(4)]
    # Pin delays after each attempt pin: on the window start, one early, on the window's last
    # cycle, one late.
    delays = [w_start - OUT - S, w_start - OUT - S - 1,
              w_start + w_len - 1 - OUT - S, w_start + w_len - OUT - S]
    for pin_cycle, d in zip(attempt_pins, delays):
        bench.pulse(pin_cycle + d, "clicks_pin", 0b01)
    await bench.run(start_cycle + 4 * period + 20)

    assert bench.cycles_where("attempt_pin") == attempt_pins, bench.cycles_where("attempt_pin")
    assert bench.cycles_where("core_attempt") == [t - OUT for t in attempt_pins]
    # Trigger output 0: offsets 2 and 3 of every attempt, on the pin one cycle later.
    expected_trig = [t + o for t in attempt_pins for o in (2, 3)]
    assert bench.cycles_where("trig_pin", 0) == expected_trig, bench.cycles_where("trig_pin", 0)
    # Gate 0 on the pin: offsets w_start .. w_start + w_len - 1, plus the output register.
    expected_gate = [t + o for t in attempt_pins for o in range(w_start, w_start + w_len)]
    assert bench.cycles_where("gate_pin", 0) == expected_gate

    e = w_start + w_len - 1
    heralds = [attempt_pins[k] + e + HERALD_LATENCY for k in (0, 2)]
    assert bench.cycles_where("herald_pin") == heralds, bench.cycles_where("herald_pin")
    records = [r for _, r in bench.records if r.kind == RecordKind.HERALD]
    assert [r.attempt for r in records] == [0, 2], records
    cell = 0 * dut_params.n_channels + 0            # window 0, channel 0
    assert [r.cells[cell] for r in records] == [(1, w_start), (1, w_start + w_len - 1)], \
        records
    assert [r.outcome for r in records] == [1, 1]
    # No record at all for the attempts whose click fell outside the window.
    assert all(r.kind != RecordKind.DIAGNOSTIC for _, r in bench.records), bench.records
    ends = [r for _, r in bench.records if r.kind == RecordKind.END]
    assert len(ends) == 1 and ends[0].attempt == 4, ends


@cocotb.test()
async def ready_pin_to_attempt_pin(dut):
    """A run started while ready is low waits; raising ready at the pin in cycle r gives the
    attempt pin in cycle r + S + START_LATENCY + OUT."""
    bench = PinBench(dut)
    await bench.reset()
    config = CoreConfig(period=20, windows=((3, 2),), max_attempts=1)
    bench.drive(0, cfg=config.pack(PARAMS))
    bench.pulse(4, "start", 1)
    r = 17
    bench.drive(r, ready_pin=1)
    await bench.run(60)
    assert bench.cycles_where("running")[0] == 5
    assert bench.cycles_where("attempt_pin") == [r + S + START_LATENCY + OUT], \
        bench.cycles_where("attempt_pin")
