"""The link emulator and its generator in Amaranth's simulator, checked cycle by cycle and bit
for bit against the Python reference in heraldry.sim.emulator_model."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from heraldry.gateware.emulator import (MIN_ARRIVAL_OFFSET, LinkEmulator, draw_cycles,
                                        min_period)
from heraldry.gateware.layouts import RUN_START_LATENCY, CoreParameters
from heraldry.gateware.prng import WARMUP_STEPS, Xoroshiro128StarStar
from heraldry.sim.emulator_model import (EmulatorModel, EmulatorSettings, Xoroshiro128,
                                         arrival_target, jitter_pmf,
                                         pattern_thresholds, probability_threshold)

ALWAYS = (1 << 32) - 1      # threshold of probability 1 (minus 2**-32)


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def apply(ctx, dut, settings):
    ctx.set(dut.config.enable, settings.enable)
    for w in range(dut.params.n_windows):
        offset, jitter, thresholds = settings.windows[w]
        window = dut.config.windows[w]
        ctx.set(window.offset, offset)
        ctx.set(window.jitter, jitter)
        for k, t in enumerate(thresholds):
            ctx.set(window.thresholds[k], t)
    for c, t in enumerate(settings.dark):
        ctx.set(dut.config.dark[c], t)
    ctx.set(dut.config.recal_cycles, settings.recal_cycles)


class CoreLike:
    """Inputs as the core gives them: ``running`` over runs, an attempt strobe once ``ready``
    was high in the cycle before (the core's ``go``) and the period has passed, the first no
    earlier than RUN_START_LATENCY cycles into the run."""

    def __init__(self, period):
        self.period = period
        self.running = False
        self.last = None

    def start(self, t):
        self.running, self.last = True, t + RUN_START_LATENCY - self.period

    def stop(self):
        self.running = False

    def attempt(self, t, ready_before):
        if self.running and ready_before and t - self.last >= self.period:
            self.last = t
            return True
        return False


def simulate(params, cycles, stimulus):
    """Run the gateware and the model side by side for ``cycles`` cycles, asserting equal
    outputs in every cycle. ``stimulus(t, outputs)`` returns (settings, inputs) for cycle t,
    ``outputs`` being (clicks, ready, busy) of cycle t. Returns the outputs of every cycle."""
    dut = LinkEmulator(params)
    model = EmulatorModel(params)
    trace = []

    async def testbench(ctx):
        applied = None
        for t in range(cycles):
            outputs = (ctx.get(dut.clicks), ctx.get(dut.ready), ctx.get(dut.busy))
            assert outputs == (model.clicks, int(model.ready), int(model.busy)), t
            trace.append(outputs)
            settings, inputs = stimulus(t, outputs)
            if settings is not applied:
                apply(ctx, dut, settings)
                applied = settings
            for name in ("reseed", "seed", "attempt", "running", "recal"):
                ctx.set(getattr(dut, name), inputs.get(name, 0))
            model.tick(settings, **inputs)
            await ctx.tick()

    run(dut, testbench)
    return trace


def random_settings(params, rng):
    n_patterns = (1 << params.n_channels) - 1
    ow = params.offset_width
    windows = []
    for _ in range(params.n_windows):
        offset = rng.choice([0, 1, MIN_ARRIVAL_OFFSET, rng.randrange(3, 20), (1 << ow) - 1])
        jitter = rng.choice([0, 1, rng.randrange(12), (1 << ow) - 1])
        thresholds = sorted(rng.randrange(1 << 32) for _ in range(n_patterns))
        windows.append((offset, jitter, tuple(thresholds)))
    dark = tuple(rng.choice([0, rng.randrange(1 << 29)]) for _ in range(params.n_channels))
    return EmulatorSettings(tuple(windows), dark, recal_cycles=rng.randrange(4),
                            enable=rng.random() < 0.9)


@pytest.mark.parametrize("instance", [0, 3])
def test_generator_matches_reference(instance):
    dut = Xoroshiro128StarStar(instance)
    reference = Xoroshiro128(0, instance)
    seeds = [0x0123456789ABCDEF, 0xFEDCBA9876543210]
    seen, expected = [], []

    async def testbench(ctx):
        for t in range(260):
            seen.append(ctx.get(dut.output))
            expected.append(reference.output)
            load = t in (5, 140)
            step = load or t % 3 != 0
            seed = seeds[t > 100]
            ctx.set(dut.seed, seed)
            ctx.set(dut.load, load)
            ctx.set(dut.step, step)
            if step:
                reference.step(seed if load else None)
            await ctx.tick()

    run(dut, testbench)
    assert seen == expected
    assert len(set(seen)) > 150


@pytest.mark.parametrize("state, published", [
    # The authors' C code (xoroshiro128starstar.c) from the first state, as Apache Commons
    # RNG's test suite lists it; the second starts small enough to follow by hand
    # (5760 = rotl(1 * 5, 7) * 9).
    ((0x012DE1BABB3C4104, 0xA5A818B8FC5AA503),
     [0x8856E974CBB6DA12, 0xD1704F3601BEB952, 0x368A027941BC61E7, 0x882B24DCFA3ADA58]),
    ((1, 2), [5760, 97769243520, 9706862127477703552, 9223447511460779954]),
])
def test_reference_generator_known_values(state, published):
    # The registered output shows that of the state two steps back.
    gen = Xoroshiro128(0, 0)
    gen.s = list(state)
    direct, registered = [], []
    for _ in range(len(published) + 2):
        direct.append(gen.scrambled())
        gen.step()
        registered.append(gen.output)
    assert direct[:len(published)] == published
    assert registered[1:len(published) + 1] == published


@pytest.mark.parametrize("offset_width", [8, 14, 16])
def test_jitter_fits_the_offset_register(offset_width):
    # The gateware keeps offset_width bits of (r * (jitter + 1)) >> 16: nothing is lost for
    # any jitter the register holds.
    rng = random.Random(offset_width)
    for jitter in [0, 1, 6, (1 << offset_width) - 1, rng.randrange(1 << offset_width)]:
        for r in [0, 1, (1 << 16) - 1, *(rng.randrange(1 << 16) for _ in range(200))]:
            assert 0 <= arrival_target(0, jitter, r) <= jitter < 1 << offset_width


@pytest.mark.parametrize("params", [
    CoreParameters(n_channels=2, n_windows=2),
    CoreParameters(n_channels=1, n_windows=3, offset_width=8),   # windows share words
    CoreParameters(n_channels=4, n_windows=1),
], ids=["2x2", "1x3", "4x1"])
def test_emulator_matches_model_cycle_by_cycle(params):
    # Runs that start and stop, attempts when ready (and some regardless), reseeds, settings
    # that change at any time, recal pulses: the outputs agree in every cycle.
    rng = random.Random(repr(params))
    core = CoreLike(period=min_period(params))
    settings = random_settings(params, rng)
    clicked = []

    def stimulus(t, outputs):
        nonlocal settings
        clicks, ready, _ = outputs
        clicked.extend([clicks] if clicks else [])
        if rng.random() < 0.01:
            settings = random_settings(params, rng)
        if rng.random() < 0.004:
            core.stop() if core.running else core.start(t)
        attempt = core.attempt(t, stimulus.ready) or rng.random() < 0.003
        stimulus.ready = ready
        return settings, dict(reseed=t == 3 or rng.random() < 0.002,
                              seed=rng.randrange(1 << 64), attempt=attempt,
                              running=core.running, recal=rng.random() < 0.03)

    stimulus.ready = 0
    core.start(0)
    simulate(params, 6000, stimulus)
    assert len(clicked) > 100 and len(set(clicked)) >= min(3, (1 << params.n_channels) - 1)


@pytest.mark.parametrize("params", [
    CoreParameters(n_channels=2, n_windows=2),
    CoreParameters(n_channels=1, n_windows=3, offset_width=8),
], ids=["2x2", "1x3"])
def test_attempts_in_every_cycle_of_a_draw_match_the_model(params):
    # The core waits for ready, but the outputs follow the model whatever the inputs: attempt
    # strobes at every distance from the previous one, so in every cycle of a draw (arming
    # with the last sampled pattern and jitter, windows sampled or not), settings changing
    # meanwhile (gaps of 1 to draw_cycles + 2 cycles: about half of the strobes come early).
    rng = random.Random(repr(params) + "draw")
    gaps = list(range(1, draw_cycles(params) + 3))
    settings = random_settings(params, rng)
    attempts, attempts_unready, clicked = [], [], []

    def stimulus(t, outputs):
        nonlocal settings
        clicks, ready, _ = outputs
        clicked.extend([clicks] if clicks else [])
        if t % 7 == 0:
            settings = dataclasses.replace(random_settings(params, rng), enable=True)
        attempt = t == (attempts[-1] + gaps[len(attempts) % len(gaps)] if attempts else 30)
        if attempt:
            attempts.append(t)
            attempts_unready.extend([t] if not ready else [])
        return settings, dict(attempt=attempt, running=True)

    simulate(params, 4000, stimulus)
    assert 3 * len(attempts_unready) > len(attempts) and len(clicked) > 50


def test_clicks_follow_the_settings_written_between_runs():
    # Run 1: detector A at offset 4. Then, with the emulator idle, detector B at offset 9
    # (jitter 2) is written: run 2's first attempt follows it, although the attempt after run
    # 1's last one was already drawn with the old settings. A reseed between runs too.
    params = CoreParameters(n_channels=2, n_windows=1)
    first = EmulatorSettings(((4, 0, (ALWAYS, ALWAYS, ALWAYS)),), (0, 0))
    second = EmulatorSettings(((9, 2, (0, ALWAYS, ALWAYS)),), (0, 0))
    period = 24
    core = CoreLike(period)
    attempts, clicks = [], []
    schedule = {40: "start", 40 + 5 * period: "stop", 320: "start", 320 + 5 * period: "stop",
                500: "reseed", 560: "start", 560 + 5 * period: "stop"}

    def stimulus(t, outputs):
        event = schedule.get(t)
        if event == "start":
            core.start(t)
        elif event == "stop":
            core.stop()
        attempt = core.attempt(t, stimulus.ready)
        stimulus.ready = outputs[1]
        if attempt:
            attempts.append(t)
        if outputs[0]:
            clicks.append((t, outputs[0]))
        settings = second if t >= 300 else first
        return settings, dict(attempt=attempt, running=core.running, reseed=event == "reseed",
                              seed=0xBEEF)

    stimulus.ready = 0
    simulate(params, 720, stimulus)
    run1 = [a for a in attempts if a < 300]
    run2 = [a for a in attempts if 300 <= a < 500]
    run3 = [a for a in attempts if a >= 500]
    assert len(run1) == len(run2) == len(run3) == 5
    assert [(a + 4, 1) for a in run1] == [c for c in clicks if c[0] < 300]
    later = [c for c in clicks if c[0] >= 300]
    assert [c[1] for c in later] == [2] * len(later)
    # One click per attempt of runs 2 and 3, from offset 9 to 11, the first one included.
    offsets = [min(c[0] for c in later if c[0] > a) - a for a in run2 + run3]
    assert set(offsets) <= {9, 10, 11} and len(set(offsets)) > 1
    assert len(later) == len(run2) + len(run3)


def test_earliest_arrival_is_min_arrival_offset():
    # Photons at offset MIN_ARRIVAL_OFFSET click exactly there; at one cycle less, never.
    params = CoreParameters(n_channels=2, n_windows=2)
    settings = EmulatorSettings(((MIN_ARRIVAL_OFFSET, 0, (ALWAYS,) * 3),
                                 (MIN_ARRIVAL_OFFSET - 1, 0, (0, ALWAYS, ALWAYS))), (0, 0))
    core = CoreLike(min_period(params))
    attempts, clicks = [], []

    def stimulus(t, outputs):
        attempt = core.attempt(t, stimulus.ready)
        stimulus.ready = outputs[1]
        attempts.extend([t] if attempt else [])
        clicks.extend([(t, outputs[0])] if outputs[0] else [])
        return settings, dict(attempt=attempt, running=core.running)

    stimulus.ready = 0
    core.start(0)
    simulate(params, 200, stimulus)
    assert len(attempts) >= 10
    assert clicks == [(a + MIN_ARRIVAL_OFFSET, 1) for a in attempts if a + 3 < 200]


def test_ready_holds_the_next_attempt_until_it_is_drawn():
    # Reset acts as a reseed: busy through the warm-up and the first draw. After an attempt
    # strobe at t0, ready is low until t0 + min_period - 1 (a strobe then lands at
    # t0 + min_period) and busy until the draw's last cycle, t0 + draw_cycles.
    params = CoreParameters()
    settings = EmulatorSettings(((5, 0, (0, 0, 0)),) * 2, (0, 0))
    t0 = 60

    def stimulus(t, outputs):
        return settings, dict(attempt=t == t0, running=t >= 50)

    trace = simulate(params, 100, stimulus)
    ready = [r for _, r, _ in trace]
    busy = [b for _, _, b in trace]
    warm = WARMUP_STEPS + draw_cycles(params)
    assert busy[:warm] == [1] * warm and ready[:warm - 1] == [0] * (warm - 1)
    assert busy[warm] == 0 and ready[warm - 1] == 1
    # The run start at 50 redraws from 52, the attempt at 60 draws the next one.
    assert busy[51] == 0 and busy[52:52 + draw_cycles(params)] == [1] * draw_cycles(params)
    assert ready[t0 + 1:t0 + min_period(params) - 1] == [0] * (min_period(params) - 2)
    assert ready[t0 + min_period(params) - 1] == 1
    assert busy[t0 + 1:t0 + 1 + draw_cycles(params)] == [1] * draw_cycles(params)
    assert busy[t0 + 1 + draw_cycles(params)] == 0


@pytest.mark.parametrize("recal_cycles, low", [(5, 5), (1, 1), (0, 1)])
def test_ready_pauses_after_recal(recal_cycles, low):
    params = CoreParameters()
    settings = EmulatorSettings(((5, 0, (0, 0, 0)),) * 2, (0, 0), recal_cycles=recal_cycles)
    start = 40                          # after the warm-up and first draw

    def stimulus(t, outputs):
        return settings, dict(recal=start <= t < start + 9)

    trace = simulate(params, start + 20, stimulus)
    ready = [r for _, r, _ in trace][start:]
    assert ready == [1] + [0] * low + [1] * (19 - low)


def test_dark_counts_only_while_running_and_enabled():
    # Dark threshold of probability 1 on detector A: a click three cycles after each running
    # cycle, unless enable is low when the draw is taken or when the click is set.
    params = CoreParameters()
    on = EmulatorSettings(((5, 0, (0, 0, 0)),) * 2, (ALWAYS, 0))
    off = EmulatorSettings(on.windows, on.dark, enable=False)

    def stimulus(t, outputs):
        return (off if 80 <= t < 90 else on), dict(running=50 <= t < 100)

    clicks = [c for c, _, _ in simulate(params, 120, stimulus)]
    # Running cycle t decides in t + 1 (enable in t) and clicks in t + 3 (enable in t + 2).
    expected = [int(53 <= t < 103 and not 81 <= t < 93) for t in range(120)]
    assert clicks == expected


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


def test_ecp5_jitter_product_is_a_registered_mult18x18d(synth_ecp5):
    # On the ECP5 both register stages of the jitter product are the MULT18X18D's own (inputs
    # on the capture enable, output on the sample enable), clocked from CLK0, the only clock
    # nextpnr times a clocked MULT18X18D from: no fabric flip-flop, no path through the
    # multiplier from fabric to fabric.
    from heraldry.gateware.emulator import _JitterProduct

    top = synth_ecp5(_JitterProduct(16))
    assert [cell["type"] for cell in top["cells"].values()] == ["MULT18X18D"]
    mult, = top["cells"].values()
    port = {name: value["bits"] for name, value in top["ports"].items()}
    wires = mult["connections"]
    assert [wires[p] for p in ("CLK0", "CE0", "CE1", "RST0")] == [
        port["clk"], port["capture"], port["sample"], port["rst"]]
    assert [wires[f"A{i}"][0] for i in range(16)] == port["r"]
    assert [wires[f"B{i}"][0] for i in range(17)] == port["span"]
    assert wires["A16"] == wires["A17"] == wires["B17"] == ["0"]
    assert [wires[f"P{i}"][0] for i in range(16, 32)] == port["product"]
    params = {k: v for k, v in mult["parameters"].items() if k.startswith("REG_")}
    assert params == {f"REG_{reg}_{what}": value
                      for reg, ce in (("INPUTA", "CE0"), ("INPUTB", "CE0"), ("OUTPUT", "CE1"))
                      for what, value in (("CLK", "CLK0"), ("CE", ce), ("RST", "RST0"))}
