"""LinkEmulator: a photonic link in gateware, replacing the detector inputs when enabled.

Per attempt and detection window it draws which detectors click (a programmable
probability for every click pattern) and when (a fixed arrival offset plus uniform jitter);
on every running cycle it draws dark counts per detector. All randomness comes from
xoroshiro128** generators seeded from one 64-bit seed. Probabilities are 32-bit thresholds: a
uniform 32-bit draw ``u`` fires when ``u < t``.

Timing. Every output is a flip-flop and no wide arithmetic lies on the way to ``clicks``:
each attempt is *drawn* ahead of its strobe, in ``draw_cycles(params)`` cycles of work under
enables, into an arrival target per window x detector; the strobe loads each into a
down-counter whose sign bit, turning, sets the click register. So photons arrive no earlier
than :data:`MIN_ARRIVAL_OFFSET` cycles after the attempt strobe (offset 0); a window whose
offset is below that never clicks.

A draw, in the cycles after it starts (its phase counts the cycles left):

1. refill: the attempt generator steps ``refill_steps(params)`` times, giving per window a
   32-bit pattern draw ``u`` and a 16-bit jitter draw ``r`` per detector, window after
   window;
2. capture, per window: in the cycle its random bits are complete (the cycle before its
   sample cycle) ``u``, each ``r`` and ``jitter + 1`` are registered next to their consumers;
3. sample, per window (its sample cycle, ``window_sample_cycles``): ``u < thresholds[k - 1]``
   is registered for every pattern k, the pattern being the smallest k that holds (0, no
   click, if none), and each detector's jitter ``(r * (jitter + 1)) >> 16``, a product of
   registers into a register (a DSP block on both FPGAs, on the ECP5 with its own input
   and output registers); the offset joins it at the attempt strobe.

The last window's sample cycle ends the draw.

**When the settings are read.** A window's ``offset`` and ``jitter`` are read in the cycle
two before its sample cycle, its ``thresholds`` in the sample cycle. Draws start at every attempt
strobe (the next attempt's draw; the drawn one becomes the current), in the cycle after a run
starts (``running``'s first cycle: the drawn attempt is dropped and drawn anew) and after the
warm-up that follows a reseed (or reset, which acts as a reseed with seed 0). So the settings
and seed written before a run starts govern its first attempt, and each later attempt uses
the settings of its own draw. Dark counts: the cycle after each running cycle compares a
fresh 32-bit draw per detector with the ``dark`` thresholds, and the click follows two cycles
later; ``enable`` gates both that draw (read in the running cycle) and the click register
(read in the cycle before the click). ``recal_cycles`` is read when ``recal`` rises.

``ready`` is low while a draw is unfinished (it rises in the draw's last cycle, so that the
core's next attempt strobe meets the finished draw), so no attempt starts on an unfinished
draw and consecutive attempts are at least ``min_period(params)`` cycles apart.

Reproducibility: the generators advance only during the warm-up, on refills and after running
cycles (dark counts), so runs of the same gateware with the same seed and the same host
commands produce the same clicks, whatever the wall-clock timing of the host (virtual board
and in-process simulator agree). :class:`heraldry.sim.emulator_model.EmulatorModel` follows
this module cycle by cycle.
"""

from amaranth.hdl import (Cat, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal,
                          signed)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import CoreParameters
from .prng import WARMUP_STEPS, Xoroshiro128StarStar

__all__ = ["LinkEmulator", "emulator_config_layout", "draw_bits", "refill_steps",
           "draw_cycles", "min_period", "window_sample_cycles", "held_words",
           "JITTER_DRAW_BITS", "PATTERN_DRAW_BITS", "MIN_ARRIVAL_OFFSET"]

#: Bits of randomness per jitter draw: jitter = (r * (J + 1)) >> 16, r uniform 16-bit.
JITTER_DRAW_BITS = 16
PATTERN_DRAW_BITS = 32
#: Earliest photon arrival, in cycles after the attempt strobe (offset 0): the strobe loads
#: target - MIN_ARRIVAL_OFFSET into a down-counter, which turns negative two cycles before
#: the click, and the click register takes its sign bit.
MIN_ARRIVAL_OFFSET = 3


def emulator_config_layout(params: CoreParameters):
    """Registers of the link emulator for a core with ``params``.

    ``windows[w].thresholds[k - 1]`` is the *cumulative* threshold of click pattern k
    (bit c set: detector c clicks), k = 1 .. 2**n_channels - 1: pattern k is drawn when
    ``thresholds[k - 2] <= u < thresholds[k - 1]``; no click when ``u`` is above them all.
    """
    ow = params.offset_width
    n_patterns = (1 << params.n_channels) - 1
    return data.StructLayout({
        "enable": 1,
        "windows": data.ArrayLayout(data.StructLayout({
            "offset": ow,      # photon arrival: cycles after the attempt strobe ...
            "jitter": ow,      # ... plus a uniform integer in 0 .. jitter
            "thresholds": data.ArrayLayout(32, n_patterns),
        }), params.n_windows),
        "dark": data.ArrayLayout(32, params.n_channels),   # per running cycle and detector
        "recal_cycles": 32,    # ready is held low this long (at least 1) when recal rises
    })


def _window_bits(params: CoreParameters):
    return PATTERN_DRAW_BITS + JITTER_DRAW_BITS * params.n_channels


def draw_bits(params: CoreParameters):
    """Random bits one attempt consumes: per window a pattern draw and a jitter draw per
    detector, window after window."""
    return params.n_windows * _window_bits(params)


def refill_steps(params: CoreParameters):
    """Generator steps (cycles) to refill the random bits of one attempt."""
    return -(-draw_bits(params) // 64)


def draw_cycles(params: CoreParameters):
    """Cycles of one draw: the refill and the last window's capture and sample cycles."""
    return refill_steps(params) + 2


def min_period(params: CoreParameters):
    """Shortest attempt period the emulator keeps up with (``ready`` enforces it)."""
    return draw_cycles(params) + 1


def window_sample_cycles(params: CoreParameters):
    """Per window, its sample cycle counted from the draw's first cycle (1): two cycles after
    the refill step that completes its random bits (the first captures them)."""
    bits = _window_bits(params)
    return [-(-(w + 1) * bits // 64) + 2 for w in range(params.n_windows)]


def held_words(params: CoreParameters):
    """Generator words kept besides the generator's output register, so that each window's
    bits are all present in its capture cycle (the one before its sample cycle)."""
    bits = _window_bits(params)
    return max(-(-(w + 1) * bits // 64) - 1 - w * bits // 64 for w in range(params.n_windows))


def dark_generators(params: CoreParameters):
    return -(-params.n_channels // 2)


class _JitterProduct(wiring.Component):
    """``(r * span) >> JITTER_DRAW_BITS``, ``width`` bits, over two register stages: ``capture``
    registers ``r`` and ``span``, ``sample`` (a later cycle) registers the product.

    On the ECP5 both stages are a MULT18X18D's own input and output registers: synth_ecp5
    maps ``*`` to one with its registers bypassed and does not absorb fabric registers, which
    would leave a path through the multiplier from fabric to fabric. Elsewhere (simulation;
    the iCE40, whose yosys -dsp maps the product to an SB_MAC16) fabric registers around
    ``*``; so also when ``span`` is wider than the ECP5's 18-bit multiplier inputs.
    """

    def __init__(self, width):
        self.width = width
        super().__init__({
            "r": In(JITTER_DRAW_BITS),
            "span": In(width + 1),
            "capture": In(1),
            "sample": In(1),
            "product": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5" and self.width + 1 <= 18:
            full = Signal(36)
            ports = {}
            for i in range(18):
                ports[f"i_A{i}"] = self.r[i] if i < len(self.r) else Const(0, 1)
                ports[f"i_B{i}"] = self.span[i] if i < len(self.span) else Const(0, 1)
                ports[f"i_C{i}"] = Const(0, 1)
            for i in range(36):
                ports[f"o_P{i}"] = full[i]
            # nextpnr times a clocked MULT18X18D only from CLK0.
            m.submodules.mult = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
                p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
                p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE1", p_REG_OUTPUT_RST="RST0",
                i_CLK0=ClockSignal(), i_CE0=self.capture, i_CE1=self.sample,
                i_RST0=ResetSignal(),
                i_SIGNEDA=Const(0, 1), i_SIGNEDB=Const(0, 1),
                i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
                **ports)
            m.d.comb += self.product.eq(full[JITTER_DRAW_BITS:][:self.width])
            return m
        r = Signal(JITTER_DRAW_BITS)
        span = Signal(self.width + 1)
        product = Signal(self.width)
        with m.If(self.capture):
            m.d.sync += [r.eq(self.r), span.eq(self.span)]
        with m.If(self.sample):
            m.d.sync += product.eq((r * span)[JITTER_DRAW_BITS:][:self.width])
        m.d.comb += self.product.eq(product)
        return m


class LinkEmulator(wiring.Component):
    """Emulated detector clicks for a :class:`HeraldCore`.

    Parameters
    ----------
    params : CoreParameters

    Attributes
    ----------
    config : In(emulator_config_layout(params))
    seed : In(64)
    reseed : In(1)
        Strobe: load ``seed`` into every generator (in the next two cycles), warm them up,
        draw the next attempt.
    attempt, running, recal : In(1)
        The core's outputs of the same names.
    clicks : Out(n_channels)
        Click pulses (one cycle high per click), registered.
    ready : Out(1)
        Registered. High, except for ``recal_cycles`` cycles (at least 1) after ``recal``
        rises, so that the core's batch handshake completes without nodes attached, and
        while a draw is unfinished (see the module's description).
    busy : Out(1)
        Registered. Warming up after a reseed, or drawing the next attempt.
    """

    def __init__(self, params: CoreParameters):
        self.params = params
        super().__init__({
            "config": In(emulator_config_layout(params)),
            "seed": In(64),
            "reseed": In(1),
            "attempt": In(1),
            "running": In(1),
            "recal": In(1),
            "clicks": Out(params.n_channels),
            "ready": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        p = self.params
        nc, nw, ow = p.n_channels, p.n_windows, p.offset_width
        cfg = self.config
        m = Module()

        attempt_gen = Xoroshiro128StarStar(instance=0)
        dark_gens = [Xoroshiro128StarStar(instance=1 + i) for i in range(dark_generators(p))]
        m.submodules.attempt_prng = attempt_gen
        for i, gen in enumerate(dark_gens):
            m.submodules[f"dark_prng{i}"] = gen
        # The attempt generator loads in the cycle after the reseed strobe, the dark ones in the
        # next, so that each load select (hundreds of loads) comes from a flip-flop of its own;
        # the warm-up counts both cycles.
        reseeding = Signal()
        dark_reseeding = Signal()
        m.d.sync += [reseeding.eq(self.reseed), dark_reseeding.eq(reseeding)]
        m.d.comb += [attempt_gen.seed.eq(self.seed), attempt_gen.load.eq(reseeding)]
        for gen in dark_gens:
            m.d.comb += [gen.seed.eq(self.seed), gen.load.eq(dark_reseeding)]

        # -- draw sequencer -------------------------------------------------------------------
        # Warm-up: a down-counter with a registered flag. The draw's phase q (cycles left:
        # draw_cycles in its first cycle .. 1 in its last, 0 once drawn) is a thermometer code,
        # left[i] = q > i, full while warming, so that every phase test is one bit; the
        # controls with many loads are registered from it. A draw restarts at a reseed, an
        # attempt strobe and a run start.
        # For the simulator's sake, state changes only under enables that are off while
        # nothing happens (drawn, no attempt armed, no dark step), and registers that change
        # together share one signal: a Verilated model then skips idle logic as a whole and
        # copies fewer registers per cycle.
        draw_len = draw_cycles(p)
        steps = refill_steps(p)
        full = (1 << draw_len) - 1
        warm = Signal(range(WARMUP_STEPS + 3), init=WARMUP_STEPS)   # reset: a seed-0 load
        warming = Signal(init=1)
        warming_next = Signal()
        # A run start (running's first cycle) restarts the draw in the next cycle, well before
        # the core first samples ready.
        running_prev = Signal()
        run_started = Signal()
        m.d.sync += [running_prev.eq(self.running), run_started.eq(self.running & ~running_prev)]
        with m.If(self.reseed):
            m.d.comb += warming_next.eq(1)
            m.d.sync += warm.eq(WARMUP_STEPS + 2)
        with m.Elif(warming):
            m.d.comb += warming_next.eq(warm[1:] != 0)
            m.d.sync += warm.eq(warm - 1)
        m.d.sync += warming.eq(warming_next)
        restart = Signal()
        m.d.comb += restart.eq(self.reseed | ((self.attempt | run_started) & ~warming))
        # The phase and the controls registered from the next one. Per window flags (low on a
        # restart, whose phase, full, is above them all): capturing, sampling.
        flag_layout = data.StructLayout({"capturing": 1, "sampling": 1})
        sequence = Signal(data.StructLayout({
            "left": draw_len,
            "flags": data.ArrayLayout(flag_layout, nw),
            "attempt_gen_step": 1,
            "busy": 1,
        }), init=(restarted := {"left": full, "attempt_gen_step": 1, "busy": 1}))  # warming
        left, flags = sequence.left, sequence.flags
        # The next phase when not restarting; once drawn (q = 0) it and every flag from it
        # stay low until a restart, so they are updated only on a restart or while drawing.
        shifted = Cat(left[1:], warming)
        sample_phases = [draw_len + 1 - cycle for cycle in window_sample_cycles(p)]

        def at(phase):
            return shifted[phase - 1] & ~shifted[phase]

        with m.If(restart):
            m.d.sync += sequence.eq(sequence.shape().const(restarted))
        with m.Elif(left[0]):
            m.d.sync += sequence.eq(Cat(
                shifted,
                *(Cat(at(phase + 1), at(phase)) for phase in sample_phases),
                shifted[draw_len - steps],
                shifted[0]))

        # -- refill: the generator's output register holds the newest word --------------------
        refilling = left[draw_len - steps]          # also high while warming
        m.d.comb += attempt_gen.step.eq(sequence.attempt_gen_step)
        n_held = held_words(p)
        held = Signal(64 * n_held)
        if n_held:
            with m.If(refilling):
                m.d.sync += held.eq(Cat(held[64:], attempt_gen.output))
        view = Cat(held, attempt_gen.output)

        # -- per window: capture, sample; attempt strobe -> current attempt -------------------
        window_bits = _window_bits(p)
        n_patterns = (1 << nc) - 1
        # Per window x detector (bit w * nc + c): a photon is to arrive.
        armed = Signal(nw * nc)
        countdowns, starts, arming = [], [], []
        for w, sample_phase in enumerate(sample_phases):
            window = cfg.windows[w]
            flag = flags[w]
            capture_phase = sample_phase + 1
            # The window's random bits, complete in its capture cycle: the pattern draw u and
            # every detector's jitter draw r.
            base = w * window_bits - 64 * (draw_len - 1 - capture_phase - n_held)
            bits = data.StructLayout({
                "u": PATTERN_DRAW_BITS,
                "r": data.ArrayLayout(JITTER_DRAW_BITS, nc),
            })(view[base:base + window_bits])

            # Offset and jitter follow the settings until the cycle before the capture; the
            # capture registers u (and the products' inputs) next to their consumers; the
            # sample registers u < thresholds[k - 1] per pattern k, the attempt strobe arming
            # the detectors with the smallest k that holds, and each detector's jitter.
            timing = Signal(data.StructLayout({
                "early": signed(ow + 1),     # offset - MIN_ARRIVAL_OFFSET
                "span": ow + 1,              # M = J + 1
                "below": n_patterns,
            }), name=f"timing{w}")
            u = Signal(PATTERN_DRAW_BITS, name=f"u{w}")
            # Every update of the window datapath happens while drawing (each of its enables
            # implies left[0]); the enclosing condition lets a simulator skip it all at once.
            with m.If(left[0]):
                with m.If(left[capture_phase]):
                    m.d.sync += [timing.early.eq(window.offset - MIN_ARRIVAL_OFFSET),
                                 timing.span.eq(window.jitter + 1)]
                with m.If(flag.capturing):
                    m.d.sync += u.eq(bits.u)
                with m.If(flag.sampling):
                    m.d.sync += timing.below.eq(Cat(*(u < window.thresholds[k]
                                                      for k in range(n_patterns))))
            pattern = Const(0, nc)
            for k in reversed(range(1, n_patterns + 1)):
                pattern = Mux(timing.below[k - 1], k, pattern)
            # (r * M) >> 16 is at most J: it fits offset_width bits.
            for c in range(nc):
                m.submodules[f"jitter{w}_{c}"] = product = _JitterProduct(ow)
                m.d.comb += [product.r.eq(bits.r[c]), product.span.eq(timing.span),
                             product.capture.eq(flag.capturing),
                             product.sample.eq(flag.sampling)]
                # Arrival: a countdown from target - MIN_ARRIVAL_OFFSET; armed by the pattern
                # (and an offset not below the minimum), it clicks once, as it turns negative.
                countdowns.append(Signal(signed(ow + 2), name=f"countdown{w}_{c}"))
                starts.append(product.product + timing.early)
                arming.append(pattern[c] & ~timing.early[-1])

        # Only an armed countdown is read, so only an armed one counts.
        with m.If(self.attempt):
            m.d.sync += [countdown.eq(start) for countdown, start in zip(countdowns, starts)]
        with m.Elif(armed != 0):
            for i, countdown in enumerate(countdowns):
                with m.If(armed[i]):
                    m.d.sync += countdown.eq(countdown - 1)
        arrived = Cat(*(countdown[-1] for countdown in countdowns))
        with m.If(self.reseed):
            m.d.sync += armed.eq(0)
        with m.Elif(self.attempt):
            m.d.sync += armed.eq(Cat(*arming))
        with m.Elif(armed != 0):
            m.d.sync += armed.eq(armed & ~arrived)
        photons = armed & arrived

        # -- clicks: photons, and dark counts (32 bits per detector per running cycle) ----------
        # In the cycle after each running cycle (once warmed up) the dark generators step and
        # their words are compared; the click register takes the registered result.
        dark_step = Signal()
        dark_gen_step = Signal(init=1)             # reset: warming
        dark_step_next = cfg.enable & self.running & ~warming_next
        m.d.sync += [dark_step.eq(dark_step_next),
                     dark_gen_step.eq(warming_next | dark_step_next)]
        for gen in dark_gens:
            m.d.comb += gen.step.eq(dark_gen_step)
        dark = Signal(nc)
        m.d.sync += dark.eq(Cat(*(
            dark_step & (dark_gens[c // 2].output.word_select(c % 2, 32) < cfg.dark[c])
            for c in range(nc))))
        clicks = Signal(nc)
        # Photons only while armed (the same logic, spelt out for the simulator's sake).
        with m.If(armed != 0):
            hits = dark
            for w in range(nw):
                hits = hits | photons.word_select(w, nc)
            m.d.sync += clicks.eq(Mux(cfg.enable, hits, 0))
        with m.Else():
            m.d.sync += clicks.eq(Mux(cfg.enable, dark, 0))

        # -- ready: a pause after recal rises, and low while a draw is unfinished ----------------
        recal_prev = Signal()
        recal_rises = Signal()
        # Low in the cycle after the rise and recal_cycles - 1 more (0 counts as 1): while a
        # countdown from recal_cycles - 2 is not negative (its sign bit is the test).
        pause = Signal(signed(33), init=-2)
        ready = Signal()
        m.d.sync += recal_prev.eq(self.recal)
        m.d.comb += recal_rises.eq(self.recal & ~recal_prev)
        with m.If(recal_rises):
            m.d.sync += pause.eq(cfg.recal_cycles - 2)
        with m.Elif(~pause[-1]):
            m.d.sync += pause.eq(pause - 1)
        # High in the draw's last cycle (the next phase below 2): an attempt strobe in the next
        # meets it finished.
        m.d.sync += ready.eq(~recal_rises & pause[-1] & ~(restart | shifted[1]))
        m.d.comb += [self.clicks.eq(clicks), self.ready.eq(ready),
                     self.busy.eq(sequence.busy)]
        return m
