"""Reference of the link emulator, bit for bit and cycle by cycle.

:class:`Xoroshiro128` is the gateware generator (with its two-stage output pipeline) and
:class:`EmulatorModel` the :class:`~heraldry.gateware.emulator.LinkEmulator`: given the same
inputs in every cycle it gives the same ``clicks``, ``ready`` and ``busy``, so tests check
the gateware exactly (the module's docstring describes the timing both follow).
:func:`click_pattern` and :func:`arrival_target` are the closed forms of what a draw computes,
:func:`jitter_pmf` the exact distribution of the arrival jitter for statistical tests, and
:func:`probability_threshold` turns probabilities into the 32-bit thresholds the registers
hold.
"""

from dataclasses import dataclass

import numpy as np

from ..gateware.emulator import (JITTER_DRAW_BITS, MIN_ARRIVAL_OFFSET, PATTERN_DRAW_BITS,
                                 dark_generators, draw_cycles, held_words, refill_steps,
                                 window_sample_cycles)
from ..gateware.prng import WARMUP_STEPS, seed_state

__all__ = ["Xoroshiro128", "EmulatorModel", "EmulatorSettings", "click_pattern",
           "arrival_target", "jitter_pmf", "probability_threshold",
           "pattern_thresholds"]

MASK64 = (1 << 64) - 1
THRESHOLD_MAX = (1 << 32) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class Xoroshiro128:
    """xoroshiro128** exactly as :class:`heraldry.gateware.prng.Xoroshiro128StarStar`:
    ``output`` is the registered output, that of the state two steps back."""

    def __init__(self, seed, instance):
        self.instance = instance
        self.s = list(seed_state(seed, instance))
        self.times5 = 0
        self.output = 0

    def scrambled(self):
        """xoroshiro128**'s output of the current state (not yet in ``output``)."""
        return (_rotl((self.s[0] * 5) & MASK64, 7) * 9) & MASK64

    def step(self, load_seed=None):
        """Advance; with ``load_seed`` the state is loaded from it instead (the output
        pipeline advances all the same)."""
        self.output = (_rotl(self.times5, 7) * 9) & MASK64
        self.times5 = (self.s[0] * 5) & MASK64
        if load_seed is not None:
            self.s = list(seed_state(load_seed, self.instance))
            return
        s0, s1 = self.s
        s1 ^= s0
        self.s = [_rotl(s0, 24) ^ s1 ^ ((s1 << 16) & MASK64), _rotl(s1, 37)]


def probability_threshold(p, field="probability"):
    """A probability as a 32-bit threshold: a uniform 32-bit draw u fires when u < t.

    Resolution 2**-32; 1.0 maps to 2**32 - 1 (never-firing probability 2**-32).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{field} = {p!r}: must lie in [0, 1]")
    return min(THRESHOLD_MAX, int(round(p * 2 ** 32)))


def pattern_thresholds(pattern_probabilities, n_channels):
    """Cumulative thresholds for click patterns 1 .. 2**n_channels - 1 (pattern k: bit c set
    means detector c clicks); ``pattern_probabilities`` maps k to its probability."""
    n_patterns = (1 << n_channels) - 1
    unknown = set(pattern_probabilities) - set(range(1, n_patterns + 1))
    if unknown:
        raise ValueError(f"click pattern {sorted(unknown)[0]}: patterns are 1..{n_patterns} "
                         f"for {n_channels} detectors")
    total = sum(pattern_probabilities.values())
    if total > 1 + 1e-12:
        raise ValueError(f"click-pattern probabilities sum to {total!r}: must be <= 1")
    thresholds, cumulative = [], 0.0
    for k in range(1, n_patterns + 1):
        cumulative += pattern_probabilities.get(k, 0.0)
        thresholds.append(probability_threshold(min(cumulative, 1.0)))
    return thresholds


def jitter_pmf(jitter):
    """Exact probabilities of arrival jitter 0..jitter: ``(r * (jitter + 1)) >> 16``."""
    r = np.arange(1 << JITTER_DRAW_BITS, dtype=np.int64)
    values = (r * (jitter + 1)) >> JITTER_DRAW_BITS
    return np.bincount(values, minlength=jitter + 1) / float(1 << JITTER_DRAW_BITS)


def click_pattern(u, thresholds):
    """The click pattern a 32-bit draw ``u`` selects: the smallest k with
    ``u < thresholds[k - 1]``, 0 (no click) if there is none."""
    return next((k for k, t in enumerate(thresholds, start=1) if u < t), 0)


def arrival_target(offset, jitter, r):
    """Arrival offset of a photon with jitter draw ``r`` (16-bit): offset + a jitter in
    0 .. jitter."""
    return offset + ((r * (jitter + 1)) >> JITTER_DRAW_BITS)


@dataclass
class EmulatorSettings:
    """Emulator registers in Python form. ``windows``: (offset, jitter, thresholds), missing
    windows hold zeros (they never click); ``dark``: a threshold per detector."""
    windows: tuple
    dark: tuple
    recal_cycles: int = 1
    enable: bool = True


class EmulatorModel:
    """The emulator cycle by cycle, from reset (which acts as a reseed with seed 0).

    Read ``clicks``, ``ready`` and ``busy`` (the outputs in the current cycle), then call
    :meth:`tick` with the cycle's inputs to move to the next cycle. The draw's phase counts
    its cycles left, as in the gateware; the warm-up's cycles come on top.
    """

    def __init__(self, params):
        self.params = params
        nc, nw = params.n_channels, params.n_windows
        self.attempt_gen = Xoroshiro128(0, 0)
        self.dark_gens = [Xoroshiro128(0, 1 + i) for i in range(dark_generators(params))]
        self.phase = WARMUP_STEPS + draw_cycles(params)
        self.held = [0] * held_words(params)
        self.early = [0] * nw           # offset - MIN_ARRIVAL_OFFSET
        self.span = [0] * nw            # jitter + 1
        self.u = [0] * nw               # captured pattern draw
        self.r = [[0] * nc for _ in range(nw)]      # captured jitter draws ...
        self.r_span = [0] * nw                      # ... and span, the products' inputs
        self.below = [0] * nw           # bit k - 1: u < thresholds[k - 1]
        self.acc = [[0] * nc for _ in range(nw)]
        self.countdown = [[0] * nc for _ in range(nw)]
        self.armed = [[False] * nc for _ in range(nw)]
        self.running_prev = self.recal_prev = self.run_started = False
        self.reseeding = self.dark_reseeding = False     # the generators load in these
        self.dark_step = self.dark_decide = False
        self.dark_less = 0
        self.pause = 0
        self.clicks, self.ready, self.busy = 0, False, True

    def _windows(self, settings):
        n_patterns = (1 << self.params.n_channels) - 1
        missing = (0, 0, (0,) * n_patterns)
        return list(settings.windows) + [missing] * (self.params.n_windows - len(settings.windows))

    def tick(self, settings: EmulatorSettings, *, reseed=False, seed=0, attempt=False,
             running=False, recal=False):
        """One clock cycle with these inputs (``settings``: the registers in this cycle)."""
        p = self.params
        nc = p.n_channels
        draw_len = draw_cycles(p)
        phase = self.phase
        warming = phase > draw_len
        refilling = phase > draw_len - refill_steps(p)       # also while warming
        if reseed:      # the generators load in the next two cycles, part of the warm-up
            phase_next = WARMUP_STEPS + 2 + draw_len
        elif (attempt or self.run_started) and not warming:
            phase_next = draw_len
        else:
            phase_next = max(phase - 1, 0)
        warming_next = phase_next > draw_len

        # Clicks: armed countdowns that are negative, and last cycle's dark decisions.
        clicks = 0
        for c in range(nc):
            hit = (self.dark_decide and self.dark_less >> c & 1
                   or any(self.armed[w][c] and self.countdown[w][c] < 0
                          for w in range(p.n_windows)))
            clicks |= int(bool(hit)) << c
        dark_less = 0
        for c in range(nc):
            word = (self.dark_gens[c // 2].output >> (32 * (c % 2))) & 0xFFFFFFFF
            dark_less |= int(word < settings.dark[c]) << c

        # Per window: offset and span follow the settings until the cycle before the capture;
        # in the cycle its bits are complete it captures u, each r and the span; in the next
        # (the sample) it compares u with the thresholds and registers each detector's jitter
        # (r M) >> 16.
        view = 0
        for i, word in enumerate((*self.held, self.attempt_gen.output)):
            view |= word << (64 * i)
        window_bits = PATTERN_DRAW_BITS + JITTER_DRAW_BITS * nc
        windows = self._windows(settings)
        for w, sample_cycle in enumerate(window_sample_cycles(p)):
            offset, jitter, thresholds = windows[w]
            sample_phase = draw_len + 1 - sample_cycle
            capture_phase = sample_phase + 1
            base = w * window_bits - 64 * (sample_cycle - 3 - len(self.held))
            pattern = next((k for k in range(1, 1 << nc) if self.below[w] >> (k - 1) & 1), 0)
            for c in range(nc):
                # Arrival: a countdown from target - MIN_ARRIVAL_OFFSET, armed once.
                start = self.acc[w][c] + self.early[w]
                countdown = self.countdown[w][c]
                if attempt:
                    self.countdown[w][c] = start
                elif countdown >= 0:
                    self.countdown[w][c] = countdown - 1
                if reseed:
                    self.armed[w][c] = False
                elif attempt:
                    self.armed[w][c] = bool(pattern >> c & 1) and self.early[w] >= 0
                elif countdown < 0:
                    self.armed[w][c] = False
            if phase == sample_phase:
                self.below[w] = sum(1 << k for k, t in enumerate(thresholds) if self.u[w] < t)
                self.acc[w] = [(r * self.r_span[w]) >> JITTER_DRAW_BITS for r in self.r[w]]
            if phase == capture_phase:
                self.u[w] = (view >> base) & ((1 << PATTERN_DRAW_BITS) - 1)
                self.r[w] = [(view >> (base + PATTERN_DRAW_BITS + JITTER_DRAW_BITS * c))
                             & ((1 << JITTER_DRAW_BITS) - 1) for c in range(nc)]
                self.r_span[w] = self.span[w]
            if phase > capture_phase:
                self.early[w], self.span[w] = offset - MIN_ARRIVAL_OFFSET, jitter + 1

        # Generators: the refill shifts in the attempt generator's output before it steps;
        # the dark generators step in the cycle after each running cycle.
        if refilling and self.held:
            self.held = self.held[1:] + [self.attempt_gen.output]
        if refilling:
            self.attempt_gen.step(seed if self.reseeding else None)
        if warming or self.dark_step:
            for gen in self.dark_gens:
                gen.step(seed if self.dark_reseeding else None)
        self.dark_decide = self.dark_step
        self.dark_step = bool(settings.enable and running and not warming_next)
        self.dark_less = dark_less
        self.clicks = clicks if settings.enable else 0
        self.reseeding, self.dark_reseeding = bool(reseed), self.reseeding
        self.phase = phase_next

        # Ready: a pause after recal rises, and low while a draw is unfinished.
        recal_rises = recal and not self.recal_prev
        self.ready = not recal_rises and self.pause <= 1 and phase_next <= 1
        if recal_rises:
            self.pause = settings.recal_cycles
        elif self.pause:
            self.pause -= 1
        self.busy = phase_next != 0
        self.run_started = bool(running and not self.running_prev)    # the draw restarts next
        self.recal_prev, self.running_prev = bool(recal), bool(running)
