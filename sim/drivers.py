"""Drive a :class:`~heraldry.sim.scenario.Scenario` into the herald core in Amaranth's
simulator and collect what it does as :class:`~heraldry.sim.scenario.Observed`."""

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from ..gateware.core import HeraldCore
from ..gateware.layouts import Reason
from .golden import Record
from .scenario import Observed, counters_to_dict, scenario_inputs
from .verilog import sum_counts

__all__ = ["run_scenario_amaranth", "Monitor"]


class Monitor:
    """Turns per-cycle output samples into :class:`Observed` (shared by every driver)."""

    def __init__(self, params):
        self.params = params
        self.observed = Observed()
        self.recal = 0
        self.read_counters_at = None

    def sample(self, t, attempt, herald, outcome, done, reason, recal, ev_valid, ev_ready,
               payload, counters):
        """``payload`` and ``counters`` may be callables, evaluated only when needed."""
        obs = self.observed
        if attempt:
            obs.attempts.append(t)
        if herald:
            obs.heralds.append((t, outcome))
        if self.read_counters_at == t:
            obs.counters.append(counters_to_dict(self.params, counters()))
            self.read_counters_at = None
        if done:
            obs.dones.append((t, Reason(reason)))
            self.read_counters_at = t + 1
        if recal and not self.recal:
            obs.recal_rises.append(t)
        if self.recal and not recal:
            obs.recal_falls.append(t)
        self.recal = recal
        if ev_valid and ev_ready:
            obs.records.append(Record.unpack(self.params, payload()))


def run_scenario_amaranth(scenario, *, vcd=None):
    """Run ``scenario`` through :class:`HeraldCore` in Amaranth's simulator."""
    p = scenario.params
    dut = HeraldCore(params=p)
    inputs = scenario_inputs(scenario)
    monitor = Monitor(p)
    config_value = dut.config.as_value()
    payload_value = dut.events.payload.as_value()
    top = Module()
    top.submodules.core = dut
    counters = Signal(p.counters_layout())
    sum_counts(top, p, dut.counts, dut.counters_clear, counters)
    counters_value = counters.as_value()

    async def testbench(ctx):
        strobes = ()
        for t in range(scenario.n_cycles):
            changes = inputs.get(t, {})
            for name in strobes:
                ctx.set(name, 0)
            strobes = []
            if "config" in changes:
                ctx.set(config_value, changes["config"])
            if "ready" in changes:
                ctx.set(dut.ready, changes["ready"])
            if "events_ready" in changes:
                ctx.set(dut.events.ready, changes["events_ready"])
            for name, signal in (("start", dut.start), ("stop", dut.stop)):
                if name in changes:
                    ctx.set(signal, 1)
                    strobes.append(signal)
            if "table" in changes:
                addr, value = changes["table"]
                ctx.set(dut.table.addr, addr)
                ctx.set(dut.table.data, value)
                ctx.set(dut.table.en, 1)
                strobes.append(dut.table.en)
            ctx.set(dut.clicks, changes.get("clicks", 0))
            monitor.sample(
                t, ctx.get(dut.attempt), ctx.get(dut.herald), ctx.get(dut.outcome),
                ctx.get(dut.done), ctx.get(dut.reason.as_value()), ctx.get(dut.recal),
                ctx.get(dut.events.valid), ctx.get(dut.events.ready),
                lambda: ctx.get(payload_value), lambda: ctx.get(counters_value))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return monitor.observed
