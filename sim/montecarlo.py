"""Vectorised Monte Carlo of a heralded link: attempt outcomes and click times.

Attempts are independent and identically distributed, so nothing loops over them.  The
attempts in which at least one photon clicks form a Bernoulli process: the gaps between them
are geometric and are drawn directly (``numpy.random.Generator.geometric``), and each such
attempt then gets its photon click pattern from the model's joint distribution over the
windows (:func:`heraldry.sim.physics.emulator_mapping`).  Dark clicks are a Poisson process
over the whole run, placed uniformly on clock cycles.  Only attempts with a click cost work,
so the throughput in simulated attempts per second grows as the click probability falls.

The click classes of every window and detector (none, one, many; photon clicks and dark
clicks counted separately, as the core counts rising edges) are then judged with the rules of
:mod:`heraldry.host.protocols`, which makes the herald statistics exactly those of
:mod:`heraldry.sim.physics` for the link returned by :meth:`LinkMonteCarlo.model_link`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import physics

__all__ = ["ClickTiming", "LinkSample", "LinkMonteCarlo", "CLICK_DTYPE", "PSI_PLUS",
           "PSI_MINUS", "sample_first_herald", "delivered_fidelity_mc", "throughput"]

#: Outcome codes, as in :mod:`heraldry.host.protocols`.
PSI_PLUS, PSI_MINUS = 1, 2

#: One click: attempt index, clock cycle within the attempt, detector, whether it is a dark
#: click, and its time within the attempt before discretisation (ns).
CLICK_DTYPE = np.dtype([("attempt", np.int64), ("cycle", np.int64), ("channel", np.uint8),
                        ("dark", np.bool_), ("time_ns", np.float64)])


@dataclass(frozen=True)
class ClickTiming:
    """Where clicks fall in an attempt, in clock cycles of the controller.

    Parameters
    ----------
    clock_hz : float
        Controller clock.
    period_cycles : int
        Attempt period.
    window_starts : tuple of int
        Start offset of each detection window (one per round).
    window_length : int
        Window length in cycles.
    photon_delay_ns : float
        Arrival of the photon's leading edge after the window start.
    lifetime_ns : float
        Emitter lifetime: emission times are exponential with this mean, truncated to the
        window (a photon click counted by the model lies in the window by definition).
    jitter_ns : float
        Gaussian timing jitter (standard deviation) of the detectors.
    dark_count_rate_hz : float or (float, float)
        Dark-count rate of detector 0 and 1.
    """

    clock_hz: float = 200e6
    period_cycles: int = 800
    window_starts: tuple = (100,)
    window_length: int = 8
    photon_delay_ns: float = 1.0
    lifetime_ns: float = 12.0
    jitter_ns: float = 0.35
    dark_count_rate_hz: tuple = (20.0, 20.0)

    def __post_init__(self):
        object.__setattr__(self, "window_starts", tuple(int(s) for s in self.window_starts))
        object.__setattr__(self, "dark_count_rate_hz",
                           physics._pair(self.dark_count_rate_hz, "dark_count_rate_hz"))
        ends = [s + self.window_length for s in self.window_starts]
        if self.window_length < 1 or min(self.window_starts) < 0 or max(ends) > self.period_cycles:
            raise ValueError("windows must lie inside the attempt period")
        spans = sorted(zip(self.window_starts, ends))
        if any(b[0] < a[1] for a, b in zip(spans, spans[1:])):
            raise ValueError("windows must not overlap")

    @property
    def cycle_ns(self) -> float:
        return 1e9 / self.clock_hz

    def window_dark_probability(self) -> np.ndarray:
        """Probability of at least one dark click per detector in one window."""
        return physics.dark_probability(self.dark_count_rate_hz,
                                        self.window_length / self.clock_hz)


@dataclass
class LinkSample:
    """What a simulated run produced.

    Attributes
    ----------
    n_attempts : int
    attempt : ndarray of int64
        Attempts with at least one click inside a window, ascending.
    classes : ndarray of uint8, shape (len(attempt), n_windows, 2)
        Their click classes per window and detector (0 none, 1 one, 2 many); every other
        attempt had none anywhere.
    herald_attempt : ndarray of int64
        Heralding attempts, ascending.
    herald_outcome : ndarray of uint8
        Their outcome codes (:data:`PSI_PLUS`, :data:`PSI_MINUS`).
    clicks : ndarray of :data:`CLICK_DTYPE` or None
        Every click (in windows or not), sorted by attempt and cycle.
    period_cycles : int
    """

    n_attempts: int
    attempt: np.ndarray
    classes: np.ndarray
    herald_attempt: np.ndarray
    herald_outcome: np.ndarray
    clicks: np.ndarray | None
    period_cycles: int

    def absolute_clicks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cycle, channel)`` of every click counted from the first attempt's start, the
        form the golden model and the emulator take."""
        c = self.clicks
        return c["attempt"] * self.period_cycles + c["cycle"], c["channel"]


def _bernoulli_attempts(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    """Indices of the successes among ``n`` Bernoulli(p) trials, by geometric gaps."""
    if p <= 0 or n <= 0:
        return np.empty(0, dtype=np.int64)
    if p >= 1:
        return np.arange(n, dtype=np.int64)
    chunks, last = [], -1
    size = int(n * p + 6 * math.sqrt(n * p) + 16)
    while True:
        idx = last + np.cumsum(rng.geometric(p, size))
        if idx[-1] >= n:
            chunks.append(idx[idx < n])
            break
        chunks.append(idx)
        last = int(idx[-1])
        size = int((n - last) * p + 6 * math.sqrt((n - last) * p) + 16)
    return np.concatenate(chunks)


class LinkMonteCarlo:
    """Monte Carlo of ``link`` with clicks placed according to ``timing``.

    The link's own ``p_dark`` is ignored: dark clicks come from
    ``timing.dark_count_rate_hz``; :meth:`model_link` is the link with the matching
    per-window dark probability, whose closed forms the samples follow.

    Parameters
    ----------
    link : physics.LinkParameters
    timing : ClickTiming
        Must have one window per round of ``link.protocol``.
    seed : int or numpy.random.Generator, optional
    """

    def __init__(self, link: physics.LinkParameters, timing: ClickTiming, seed=None):
        if len(timing.window_starts) != link.n_windows:
            raise ValueError(f"{link.protocol} needs {link.n_windows} window(s), timing has "
                             f"{len(timing.window_starts)}")
        self.link = link
        self.timing = timing
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        joint = physics.emulator_mapping(link, timing.window_length).joint_patterns.reshape(-1)
        # Pattern code: window-0 mask in the high digit (base 4) for two windows.
        self.p_photon = float(1.0 - joint[0])
        self._cdf = np.cumsum(joint[1:]) / self.p_photon if self.p_photon > 0 else None

    def model_link(self) -> physics.LinkParameters:
        """The link whose closed forms these samples follow (dark counts from the timing)."""
        return self.link.replace(p_dark=tuple(self.timing.window_dark_probability()))

    def run(self, n_attempts: int, clicks: bool = True) -> LinkSample:
        """Simulate ``n_attempts`` attempts.

        Parameters
        ----------
        n_attempts : int
        clicks : bool
            Also return every click with its cycle and time (slower when clicks are many).
        """
        t, rng, nw = self.timing, self.rng, self.link.n_windows
        n = int(n_attempts)
        # Photon clicks: attempts with any, then their joint pattern over the windows.
        att = _bernoulli_attempts(rng, self.p_photon, n)
        if len(att):
            code = np.searchsorted(self._cdf, rng.random(len(att)), side="right") + 1
            code = np.minimum(code, 4 ** nw - 1)
        else:
            code = np.empty(0, dtype=np.int64)
        masks = [code >> (2 * (nw - 1 - w)) & 3 for w in range(nw)]
        sig_att, sig_slot, sig_cycle, sig_time = [], [], [], []
        for w in range(nw if clicks else 0):
            for det in (0, 1):
                sel = att[(masks[w] >> det) & 1 == 1]
                sig_att.append(sel)
                sig_slot.append(np.full(len(sel), 2 * w + det, dtype=np.int64))
                tn = t.window_starts[w] * t.cycle_ns + self._photon_times(len(sel))
                # Clipping only guards float rounding at the window's edges.
                sig_cycle.append(np.clip(np.floor(tn / t.cycle_ns).astype(np.int64),
                                         t.window_starts[w],
                                         t.window_starts[w] + t.window_length - 1))
                sig_time.append(tn)
        # Dark clicks: Poisson over the whole run, uniform over its clock cycles (sorted, so
        # that every click group below is a sorted run).
        total_cycles = n * t.period_cycles
        dk_att, dk_cycle, dk_chan, dk_slot = [], [], [], []
        for det in (0, 1):
            mean = t.dark_count_rate_hz[det] * total_cycles / t.clock_hz
            c = np.sort(rng.integers(0, total_cycles, rng.poisson(mean))) if total_cycles \
                else np.empty(0, dtype=np.int64)
            a, off = np.divmod(c, t.period_cycles)
            slot = np.full(len(c), -1, dtype=np.int64)
            for w, start in enumerate(t.window_starts):
                slot[(off >= start) & (off < start + t.window_length)] = 2 * w + det
            dk_att.append(a)
            dk_cycle.append(off)
            dk_chan.append(np.full(len(c), det, dtype=np.uint8))
            dk_slot.append(slot)
        attempts, classes = self._classes(att, masks, np.concatenate(dk_att),
                                          np.concatenate(dk_slot))
        h_att, h_out = self._herald(attempts, classes)
        click_arr = None
        if clicks:
            all_att = np.concatenate(sig_att + dk_att)
            n_sig = sum(len(a) for a in sig_att)
            click_arr = np.empty(len(all_att), dtype=CLICK_DTYPE)
            click_arr["attempt"] = all_att
            click_arr["cycle"] = np.concatenate(sig_cycle + dk_cycle)
            click_arr["channel"] = np.concatenate(
                [(np.concatenate(sig_slot) % 2).astype(np.uint8)] + dk_chan)
            click_arr["dark"] = np.arange(len(click_arr)) >= n_sig
            dark_cycles = np.concatenate(dk_cycle)
            click_arr["time_ns"] = np.concatenate(
                sig_time + [(dark_cycles + rng.random(len(dark_cycles))) * t.cycle_ns])
            # The groups are sorted runs; a stable (merging) sort on one int64 key orders the
            # clicks by attempt, then cycle.
            order = np.argsort(all_att * t.period_cycles + click_arr["cycle"], kind="stable")
            click_arr = click_arr[order]
        return LinkSample(n, attempts, classes, h_att, h_out, click_arr, t.period_cycles)

    def events_per_attempt(self) -> float:
        """Expected clicks per attempt: photon-click attempts plus dark clicks."""
        t = self.timing
        return self.p_photon + sum(t.dark_count_rate_hz) * t.period_cycles / t.clock_hz

    def iter_run(self, n_attempts: int, chunk_events: float = 4e6, clicks: bool = True):
        """Simulate ``n_attempts`` in chunks of about ``chunk_events`` clicks each, to bound
        memory; yields ``(first_attempt, LinkSample)`` with attempt indices relative to
        ``first_attempt``."""
        n = int(n_attempts)
        chunk = max(int(chunk_events / max(self.events_per_attempt(), 1e-300)), 1)
        for first in range(0, n, chunk):
            yield first, self.run(min(chunk, n - first), clicks=clicks)

    def _photon_times(self, k: int) -> np.ndarray:
        """Photon click times after the window start (ns): delay + emission + jitter."""
        t, rng = self.timing, self.rng
        span = t.window_length * t.cycle_ns
        times = np.full(k, t.photon_delay_ns)
        if t.lifetime_ns > 0:
            # Exponential emission truncated to the window, by inverting its CDF.
            room = max(span - t.photon_delay_ns, 0.0)
            times += -t.lifetime_ns * np.log1p(
                -rng.random(k) * -np.expm1(-room / t.lifetime_ns))
        if t.jitter_ns > 0:
            times += rng.normal(0.0, t.jitter_ns, k)
        # A counted photon click lies in the window by definition: clip the jitter's tails.
        # (The margin below the edge survives adding the window's start time.)
        return np.clip(times, 0.0, span * (1 - 1e-12))

    def _classes(self, att, masks, dk_att, dk_slot):
        """Click classes per attempt with an in-window click: photon clicks (one per
        detector and window at most) plus dark clicks, capped at 2 ("many")."""
        nw = self.link.n_windows
        classes = np.zeros((len(att), nw, 2), dtype=np.uint8)
        for w in range(nw):
            classes[:, w, 0] = masks[w] & 1
            classes[:, w, 1] = (masks[w] >> 1) & 1
        inside = dk_slot >= 0
        if not inside.any():
            return att, classes
        # Dark clicks inside windows are few: aggregate them, then merge into the rows.
        keys, counts = np.unique(dk_att[inside] * (2 * nw) + dk_slot[inside],
                                 return_counts=True)
        d_att, d_slot = np.divmod(keys, 2 * nw)
        pos = np.searchsorted(att, d_att)
        found = pos < len(att)
        found[found] = att[pos[found]] == d_att[found]
        extra = np.unique(d_att[~found])
        rows = np.where(found, pos, len(att) + np.searchsorted(extra, d_att))
        attempts = np.concatenate([att, extra])
        classes = np.concatenate([classes, np.zeros((len(extra), nw, 2), dtype=np.uint8)])
        flat = classes.reshape(len(attempts), 2 * nw)
        np.add.at(flat, (rows, d_slot), np.minimum(counts, 2).astype(np.uint8))
        np.minimum(flat, 2, out=flat)
        if len(extra):
            order = np.argsort(attempts, kind="stable")
            attempts, classes = attempts[order], classes[order]
        return attempts, classes

    def _herald(self, attempts, classes):
        single0 = (classes[:, :, 0] == 1) & (classes[:, :, 1] == 0)
        single1 = (classes[:, :, 0] == 0) & (classes[:, :, 1] == 1)
        single = single0 | single1
        if self.link.protocol == physics.SINGLE_CLICK:
            ok = single[:, 0]
            outcome = np.where(single0[:, 0], PSI_PLUS, PSI_MINUS)
        else:
            ok = single[:, 0] & single[:, 1]
            outcome = np.where(single0[:, 0] == single0[:, 1], PSI_PLUS, PSI_MINUS)
        return attempts[ok], outcome[ok].astype(np.uint8)


def sample_first_herald(p: float, deadline: int, n_cycles: int, rng=None) -> np.ndarray:
    """Deterministic-delivery cycles: the attempt (1-based) of each cycle's first herald, or
    0 when none came within ``deadline`` attempts.  One geometric draw per cycle."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    k = rng.geometric(p, n_cycles)
    k[k > deadline] = 0
    return k


def delivered_fidelity_mc(link: physics.LinkParameters, timing: physics.Timing,
                          memory: physics.Memory, deadline: int, n_cycles: int,
                          f_unentangled: float = 0.5, rng=None) -> tuple[float, float]:
    """Monte Carlo of deterministic delivery: mean delivered fidelity and its standard error.

    Each cycle's first herald is sampled; its state is stored until the deadline and decays
    as :func:`physics.stored_fidelity`; cycles without a herald deliver ``f_unentangled``.
    """
    k = sample_first_herald(physics.p_herald(link), deadline, n_cycles, rng)
    f = np.where(k > 0, physics.stored_fidelity(link, deadline - k, memory, timing),
                 f_unentangled)
    return float(f.mean()), float(f.std(ddof=1) / math.sqrt(n_cycles))


def throughput(link: physics.LinkParameters, timing: ClickTiming, n_attempts: int = 10 ** 9,
               repeats: int = 3, clicks: bool = True, seed: int = 0) -> dict:
    """Simulated attempts per second (best of ``repeats`` runs of ``n_attempts``).

    Returns
    -------
    dict
        ``attempts_per_s``, ``seconds`` (best run), ``n_attempts``, ``heralds`` and
        ``clicks`` of the last run, and ``p_click`` (photon-click probability per attempt).
    """
    mc = LinkMonteCarlo(link, timing, seed)
    best, heralds, n_clicks = math.inf, 0, 0
    for _ in range(repeats):
        heralds = n_clicks = 0
        t0 = time.perf_counter()
        for _, sample in mc.iter_run(n_attempts, clicks=clicks):
            heralds += len(sample.herald_attempt)
            n_clicks += 0 if sample.clicks is None else len(sample.clicks)
        best = min(best, time.perf_counter() - t0)
    return {"attempts_per_s": n_attempts / best, "seconds": best, "n_attempts": n_attempts,
            "heralds": heralds, "clicks": n_clicks if clicks else None,
            "p_click": mc.p_photon, "events_per_attempt": mc.events_per_attempt()}
