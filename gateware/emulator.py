"""LinkEmulator: a photonic link in gateware, replacing the detector inputs when enabled.

Per attempt and detection window it draws which detectors click (a programmable
probability for every click pattern) and when (a fixed arrival offset plus uniform jitter);
on every running cycle it draws dark counts per detector. All randomness comes from
xoshiro256** generators seeded from one 64-bit seed. The generators advance only on
reseed, on drawing an attempt, and on running cycles, so two runs of the same gateware
with the same seed and the same host commands produce the same clicks, whatever the
wall-clock timing of the host (virtual board and in-process simulator agree).

Probabilities are 32-bit thresholds: a uniform 32-bit draw ``u`` fires when ``u < t``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .layouts import CoreParameters
from .prng import WARMUP_STEPS, Xoshiro256StarStar

__all__ = ["LinkEmulator", "emulator_config_layout", "draw_bits", "refill_steps",
           "JITTER_DRAW_BITS"]

#: Bits of randomness per jitter draw: jitter = (r * (J + 1)) >> 16, r uniform 16-bit.
JITTER_DRAW_BITS = 16
PATTERN_DRAW_BITS = 32


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


def draw_bits(params: CoreParameters):
    """Random bits one attempt consumes: per window a pattern draw and a jitter draw per
    detector."""
    return params.n_windows * (PATTERN_DRAW_BITS + JITTER_DRAW_BITS * params.n_channels)


def refill_steps(params: CoreParameters):
    """Generator steps (cycles) to draw the next attempt; the period must be longer."""
    return -(-draw_bits(params) // 64)


def dark_generators(params: CoreParameters):
    return -(-params.n_channels // 2)


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
        Strobe: load ``seed`` into every generator, warm them up, draw the next attempt.
    attempt, running, recal : In(1)
        The core's outputs of the same names.
    clicks : Out(n_channels)
        Click pulses (one cycle high per click), combinational from ``attempt``.
    ready : Out(1)
        High, except for ``recal_cycles`` cycles (at least 1) after ``recal`` rises, so that
        the core's batch handshake completes without nodes attached.
    busy : Out(1)
        Warming up after a reseed, or still drawing the next attempt.
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

        attempt_gen = Xoshiro256StarStar(instance=0)
        dark_gens = [Xoshiro256StarStar(instance=1 + i) for i in range(dark_generators(p))]
        m.submodules.attempt_prng = attempt_gen
        for i, gen in enumerate(dark_gens):
            m.submodules[f"dark_prng{i}"] = gen
        generators = [attempt_gen, *dark_gens]

        warmup = Signal(range(WARMUP_STEPS + 1))
        steps = refill_steps(p)
        filled = Signal(range(steps + 1))
        m.d.comb += self.busy.eq((warmup != 0) | (filled != steps))
        for gen in generators:
            m.d.comb += [gen.seed.eq(self.seed), gen.load.eq(self.reseed)]
        with m.If(self.reseed):
            m.d.sync += [warmup.eq(WARMUP_STEPS), filled.eq(0)]
        with m.Elif(warmup != 0):
            m.d.sync += warmup.eq(warmup - 1)

        # Next attempt's random bits, drawn ahead so that a click can fall at offset 0.
        next_raw = Signal(steps * 64)
        refill = (warmup == 0) & (filled != steps) & ~self.reseed
        m.d.comb += attempt_gen.step.eq((warmup != 0) | refill)
        with m.If(refill):
            m.d.sync += [next_raw.word_select(filled, 64).eq(attempt_gen.output),
                         filled.eq(filled + 1)]
        with m.If(self.attempt & ~self.reseed & (warmup == 0)):
            m.d.sync += filled.eq(0)

        # Current attempt: its random bits and its offset (saturating: nothing fires twice).
        cur_raw = Signal.like(next_raw)
        max_offset = (1 << (ow + 1)) - 1
        offset_reg = Signal(ow + 1, init=max_offset)
        offset = Signal(ow + 1)
        raw = Signal.like(next_raw)
        with m.If(self.attempt):
            m.d.sync += [cur_raw.eq(next_raw), offset_reg.eq(1)]
        with m.Elif(offset_reg != max_offset):
            m.d.sync += offset_reg.eq(offset_reg + 1)
        with m.If(self.reseed):
            m.d.sync += offset_reg.eq(max_offset)
        m.d.comb += [
            offset.eq(Mux(self.attempt, 0, offset_reg)),
            raw.eq(Mux(self.attempt, next_raw, cur_raw)),
        ]

        photon = Signal(nc)
        per_window = PATTERN_DRAW_BITS + JITTER_DRAW_BITS * nc
        photon_terms = []
        for w in range(nw):
            window = cfg.windows[w]
            base = w * per_window
            u = raw[base:base + PATTERN_DRAW_BITS]
            pattern = Signal(nc, name=f"pattern{w}")
            # The smallest k with u < thresholds[k-1] wins: assign from the largest down.
            for k in reversed(range(1, 1 << nc)):
                with m.If(u < window.thresholds[k - 1]):
                    m.d.comb += pattern.eq(k)
            for c in range(nc):
                lo = base + PATTERN_DRAW_BITS + JITTER_DRAW_BITS * c
                r = raw[lo:lo + JITTER_DRAW_BITS]
                jitter = Signal(ow, name=f"jitter{w}_{c}")
                m.d.comb += jitter.eq((r * (window.jitter + 1)) >> JITTER_DRAW_BITS)
                photon_terms.append((c, pattern[c] & (offset == window.offset + jitter)))
        for c in range(nc):
            terms = [term for channel, term in photon_terms if channel == c]
            hit = terms[0]
            for term in terms[1:]:
                hit = hit | term
            m.d.comb += photon[c].eq(hit)

        # Dark counts: 32 bits per detector per running cycle.
        dark = Signal(nc)
        dark_step = cfg.enable & self.running & (warmup == 0) & ~self.reseed
        for i, gen in enumerate(dark_gens):
            m.d.comb += gen.step.eq((warmup != 0) | dark_step)
        for c in range(nc):
            gen = dark_gens[c // 2]
            word = gen.output.word_select(c % 2, 32)
            m.d.comb += dark[c].eq(dark_step & (word < cfg.dark[c]))

        m.d.comb += self.clicks.eq(Mux(cfg.enable, photon | dark, 0))

        # Ready: a pause after recal rises, so the batch handshake sees a rising edge.
        recal_prev = Signal()
        pause = Signal(32)
        m.d.sync += recal_prev.eq(self.recal)
        with m.If(self.recal & ~recal_prev):
            m.d.sync += pause.eq(Mux(cfg.recal_cycles != 0, cfg.recal_cycles, 1))
        with m.Elif(pause != 0):
            m.d.sync += pause.eq(pause - 1)
        m.d.comb += self.ready.eq(pause == 0)
        return m
