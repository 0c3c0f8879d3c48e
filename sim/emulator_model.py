"""Reference of the link emulator's randomness and distributions.

:class:`Xoshiro256` reproduces the gateware generator bit for bit, and
:class:`EmulatorReference` the emulator's draws (click patterns, arrival offsets, dark
clicks), so tests can check the gateware exactly; :func:`jitter_pmf` gives the exact
distribution of the arrival jitter for statistical tests, and :func:`probability_threshold`
turns probabilities into the 32-bit thresholds the registers hold.
"""

from dataclasses import dataclass

import numpy as np

from ..gateware.emulator import (JITTER_DRAW_BITS, PATTERN_DRAW_BITS, dark_generators,
                                 refill_steps)
from ..gateware.prng import WARMUP_STEPS, seed_state

__all__ = ["Xoshiro256", "EmulatorReference", "EmulatorSettings", "jitter_pmf",
           "probability_threshold", "pattern_thresholds"]

MASK64 = (1 << 64) - 1
THRESHOLD_MAX = (1 << 32) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class Xoshiro256:
    """xoshiro256** exactly as :class:`heraldry.gateware.prng.Xoshiro256StarStar`."""

    def __init__(self, seed, instance):
        self.s = list(seed_state(seed, instance))

    def output(self):
        return (_rotl((self.s[1] * 5) & MASK64, 7) * 9) & MASK64

    def step(self):
        s0, s1, s2, s3 = self.s
        t = (s1 << 17) & MASK64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self.s = [s0, s1, s2, s3]

    def next(self):
        value = self.output()
        self.step()
        return value


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


@dataclass
class EmulatorSettings:
    """Emulator registers in Python form. ``windows``: (offset, jitter, thresholds)."""
    windows: tuple
    dark: tuple
    recal_cycles: int = 1


class EmulatorReference:
    """The emulator's draws after a reseed with ``seed``, attempt by attempt."""

    def __init__(self, params, seed):
        self.params = params
        self.attempt_gen = Xoshiro256(seed, 0)
        self.dark_gens = [Xoshiro256(seed, 1 + i) for i in range(dark_generators(params))]
        for gen in (self.attempt_gen, *self.dark_gens):
            for _ in range(WARMUP_STEPS):
                gen.step()
        self._next = self._draw_raw()

    def _draw_raw(self):
        raw = 0
        for i in range(refill_steps(self.params)):
            raw |= self.attempt_gen.next() << (64 * i)
        return raw

    def next_attempt(self, settings: EmulatorSettings):
        """Clicks of the next attempt: a list of (offset, channel), sorted."""
        raw, self._next = self._next, self._draw_raw()
        nc = self.params.n_channels
        per_window = PATTERN_DRAW_BITS + JITTER_DRAW_BITS * nc
        clicks = set()
        for w, (offset, jitter, thresholds) in enumerate(settings.windows):
            base = w * per_window
            u = (raw >> base) & ((1 << PATTERN_DRAW_BITS) - 1)
            pattern = next((k for k, t in enumerate(thresholds, start=1) if u < t), 0)
            for c in range(nc):
                lo = base + PATTERN_DRAW_BITS + JITTER_DRAW_BITS * c
                r = (raw >> lo) & ((1 << JITTER_DRAW_BITS) - 1)
                if pattern >> c & 1:
                    clicks.add((offset + ((r * (jitter + 1)) >> JITTER_DRAW_BITS), c))
        return sorted(clicks)

    def next_dark(self, settings: EmulatorSettings):
        """Detectors with a dark click in the next running cycle (bitmask)."""
        mask = 0
        for c in range(self.params.n_channels):
            word = (self.dark_gens[c // 2].output() >> (32 * (c % 2))) & 0xFFFFFFFF
            if word < settings.dark[c]:
                mask |= 1 << c
        for gen in self.dark_gens:
            gen.step()
        return mask
