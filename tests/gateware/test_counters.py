"""Block-RAM event counters against their definition, in Amaranth's simulator."""

import random

import pytest
from amaranth.sim import Simulator

from heraldry.gateware.counters import EventCounters, counter_paths
from heraldry.gateware.layouts import CoreParameters
from heraldry.gateware.regmap import field_at


@pytest.mark.parametrize("params", [CoreParameters(), CoreParameters(n_channels=1, n_windows=1,
                                                                      outcome_width=1,
                                                                      count_width=20)],
                         ids=["2x2", "1x1"])
def test_snapshots_are_exact(params):
    # Random steps every cycle (often all at their largest), clears at random, snapshots as
    # often as the sweep allows, many with a clear in their cycle or during their sweep:
    # every snapshot reads, counter by counter, the sum of the steps after the last clear up
    # to and including the snapshot cycle (a clear's own steps are discarded).
    rng = random.Random(7)
    dut = EventCounters(params)
    paths = counter_paths(params)
    steps = [field_at(dut.counts, path) for path in paths]
    n_cycles = 3000
    clears = set(rng.sample(range(5, n_cycles), 40)) | {100, 101, 300}
    checked = []

    async def bench(ctx):
        values = [0] * len(paths)
        snapshot_at = None       # the snapshot cycle S, once requested
        expected = None
        reads = []              # (counter, expected) left to read
        reading = None
        for t in range(n_cycles):
            clear = t in clears
            ctx.set(dut.clear, int(clear))
            burst = rng.random() < 0.3
            for i, step in enumerate(steps):
                top = (1 << len(step)) - 1
                value = top if burst else rng.randrange(top + 1)
                ctx.set(step, value)
                values[i] = 0 if clear else values[i] + value
            if snapshot_at == t:
                expected = list(values)
            sweeping = ctx.get(dut.port.sweeping)
            ctx.set(dut.port.snapshot_next, 0)
            ctx.set(dut.port.read_en, 0)
            if reading is not None:
                i, want = reading
                assert ctx.get(dut.port.read_data) == want, (t, paths[i])
                checked.append(want)
                reading = None
            if snapshot_at is not None and t > snapshot_at and not sweeping:
                if not reads and expected is not None:
                    reads = list(enumerate(expected))
                    expected = None
                if reads:
                    i, want = reads.pop(0)
                    ctx.set(dut.port.read_addr, i)
                    ctx.set(dut.port.read_en, 1)
                    reading = (i, want)
                elif rng.random() < 0.5:
                    # Next snapshot, often with a clear in its cycle or during its sweep.
                    if rng.random() < 0.4:
                        clears.add(t + 1 + rng.choice([0, 1, 2, 5]))
                    ctx.set(dut.port.snapshot_next, 1)
                    snapshot_at = t + 1
            elif snapshot_at is None and t == 3:
                ctx.set(dut.port.snapshot_next, 1)
                snapshot_at = t + 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 50 * len(paths)
    assert max(checked) > 127         # far beyond a residue (6 bits at most)
