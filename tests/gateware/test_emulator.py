"""The link emulator and its generator in Amaranth's simulator, checked bit for bit against
the Python reference in heraldry.sim.emulator_model."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from heraldry.gateware.emulator import LinkEmulator, refill_steps
from heraldry.gateware.layouts import CoreParameters
from heraldry.gateware.prng import WARMUP_STEPS, Xoshiro256StarStar
from heraldry.sim.emulator_model import (EmulatorReference, EmulatorSettings, Xoshiro256,
                                         jitter_pmf, pattern_thresholds,
                                         probability_threshold)


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("instance", [0, 3])
def test_generator_matches_reference(instance):
    dut = Xoshiro256StarStar(instance)
    seed = 0x0123456789ABCDEF
    reference = Xoshiro256(seed, instance)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.seed, seed)
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        ctx.set(dut.step, 1)
        for _ in range(200):
            seen.append(ctx.get(dut.output))
            await ctx.tick()

    run(dut, testbench)
    assert seen == [reference.next() for _ in range(200)]
    assert len(set(seen)) == 200


def test_reference_generator_known_values():
    # xoshiro256** of state (1, 2, 3, 4): the first outputs published with the algorithm.
    gen = Xoshiro256(0, 0)
    gen.s = [1, 2, 3, 4]
    assert [gen.next() for _ in range(3)] == [11520, 0, 1509978240]


def test_emulator_clicks_match_reference_exactly():
    params = CoreParameters(n_channels=2, n_windows=2)
    dut = LinkEmulator(params)
    seed, period, n_attempts = 0xC0FFEE, 24, 60
    windows = ((3, 4, pattern_thresholds({1: 0.3, 2: 0.3, 3: 0.2}, 2)),
               (12, 7, pattern_thresholds({1: 0.5, 3: 0.25}, 2)))
    dark = (probability_threshold(0.03), probability_threshold(0.05))
    settings = EmulatorSettings(windows, dark)
    reference = EmulatorReference(params, seed)
    expected = {}
    first_attempt = WARMUP_STEPS + refill_steps(params) + 3
    for n in range(n_attempts):
        start = first_attempt + n * period
        for offset, channel in reference.next_attempt(settings):
            assert offset < period
            expected[start + offset] = expected.get(start + offset, 0) | 1 << channel
    observed = {}
    end = first_attempt + n_attempts * period

    async def testbench(ctx):
        ctx.set(dut.config.enable, 1)
        for w, (offset, jitter, thresholds) in enumerate(windows):
            ctx.set(dut.config.windows[w].offset, offset)
            ctx.set(dut.config.windows[w].jitter, jitter)
            for k, t in enumerate(thresholds):
                ctx.set(dut.config.windows[w].thresholds[k], t)
        for c, t in enumerate(dark):
            ctx.set(dut.config.dark[c], t)
        ctx.set(dut.seed, seed)
        ctx.set(dut.reseed, 1)
        await ctx.tick()
        ctx.set(dut.reseed, 0)
        for t in range(1, end):
            running = t >= first_attempt
            ctx.set(dut.running, running)
            ctx.set(dut.attempt, running and (t - first_attempt) % period == 0)
            if running:
                assert ctx.get(dut.busy) == ((t - first_attempt) % period in (1, 2))
            clicks = ctx.get(dut.clicks)
            if clicks:
                observed[t] = clicks
            await ctx.tick()

    run(dut, testbench)
    dark_reference = EmulatorReference(params, seed)
    for t in range(first_attempt, end):
        mask = dark_reference.next_dark(settings)
        if mask:
            expected[t] = expected.get(t, 0) | mask
    assert observed == expected
    assert len(observed) > 40


def test_ready_pauses_after_recal():
    params = CoreParameters()
    dut = LinkEmulator(params)
    levels = []

    async def testbench(ctx):
        ctx.set(dut.config.recal_cycles, 5)
        for t in range(20):
            ctx.set(dut.recal, 3 <= t < 12)
            levels.append(ctx.get(dut.ready))
            await ctx.tick()

    run(dut, testbench)
    assert levels == [1] * 4 + [0] * 5 + [1] * 11


def test_jitter_pmf_is_exact_and_nearly_uniform():
    pmf = jitter_pmf(6)
    assert pmf.sum() == pytest.approx(1.0, abs=0)
    assert np.all(np.abs(pmf - 1 / 7) < 1 / 65536)


def test_thresholds_reject_bad_probabilities():
    with pytest.raises(ValueError, match=r"sum to 1.2"):
        pattern_thresholds({1: 0.6, 2: 0.6}, 2)
    with pytest.raises(ValueError, match=r"click pattern 4: patterns are 1..3"):
        pattern_thresholds({4: 0.1}, 2)
    with pytest.raises(ValueError, match=r"dark = 1.5"):
        probability_threshold(1.5, "dark")
