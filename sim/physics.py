"""Physics of the heralded link: closed forms for what a controller's settings buy.

The functions here answer, before a run, what the heralding probability, the heralded-state
fidelity, the entanglement rate and the deterministically delivered fidelity will be for the
single-click scheme (Humphreys et al. 2018, Hermans et al. 2022) and the Barrett-Kok scheme
(Barrett & Kok 2005, Hensen et al. 2015); they also map the physics onto the link emulator's
per-window click-pattern probabilities and dark-count probabilities.

The model
---------
Every closed form below is *exact* for the following model; the test-suite checks this to
1e-9 against an independent density-matrix simulation of the same model.

Nodes and emission
    Each node ``i`` (A, B) holds a spin prepared in ``sqrt(alpha_i)|b> + sqrt(1-alpha_i)|d>``
    (bright, dark).  On optical excitation the bright state emits one photon into the node's
    output mode; the dark state emits nothing.
Double excitation (``p_double``)
    With amplitude ``sqrt(p_double)`` the bright state is excited twice; the first photon is
    emitted during the excitation pulse, before the detection window, and is never detected,
    but it carries which-state information away: each emission multiplies the node's
    ``|b><d|`` coherence by ``sqrt(1 - p_double)`` (a phase-damping channel on the spin).
    The second photon is emitted into the detection mode like an ordinary one, so click
    statistics do not depend on ``p_double``.
Loss and detection efficiency (``eta``)
    ``eta_i`` is the probability that a photon from node ``i`` reaches a detector and clicks.
    It is modelled as a beam-splitter loss on node ``i``'s mode before the 50:50 beam splitter.
Beam splitter and indistinguishability (``visibility``)
    The modes meet on a 50:50 beam splitter (``a -> (c + d)/sqrt2``, ``b -> (c - d)/sqrt2``)
    with detectors 0 (``c``) and 1 (``d``).  Per attempt, with probability ``V`` the photons
    of the two nodes share one temporal-spectral mode; otherwise node B's photons are in an
    orthogonal mode (a classical mixture over attempts).  Hence the Hong-Ou-Mandel visibility
    is ``V`` and the single-photon interference contrast is ``V`` as well.  (A pure-state
    overlap model would instead give ``sqrt(V)`` in the single-click coherence; the mixture
    reproduces the form quoted in the reference, ``(1 + V e^{-sigma^2/2}) / 2``.)
Optical phase (``phase_noise``)
    Node B's path carries a phase ``phi ~ Normal(0, sigma_phi^2)``, drawn once per attempt
    (the interferometer drifts slowly compared with an attempt): a photon from B picks up
    ``exp(i phi)``.  Single-click coherence is multiplied by ``exp(-sigma_phi^2 / 2)``;
    Barrett-Kok's cancels because both terms carry one photon from B.
Detectors and dark counts (``p_dark``)
    Photons produce at most one click per detector and window (a threshold detector: photons
    bunched on one detector arrive within its dead time).  Dark clicks are an independent
    Poisson process per detector; ``p_dark`` is the probability of at least one dark click
    in the window, i.e. a mean of ``mu = -ln(1 - p_dark)`` per window.  A detector's *click
    class* in a window is ``min(photon_click + dark_clicks, 2)``: none, one, or many.
Heralding (the rules of :mod:`heraldry.host.protocols`)
    Single-click: exactly one detector has exactly one click and the other none; detector 0
    heralds ``Psi+``, detector 1 ``Psi-``, with ``Psi+- = (|bd> +- |db>)/sqrt2``.
    Barrett-Kok: both spins are flipped (``b <-> d``) between two rounds; each round must
    single-click; the same detector twice heralds ``Psi+``, different detectors ``Psi-``.
    Fidelities are with respect to these targets on the spins after the last round.

Reduction to the leading-order forms
    For ``eta -> 0``, ``p_dark = p_double = 0`` and equal nodes, the exact results reduce to
    ``P(herald) = alpha (eta_A + eta_B)`` and ``F = (1 - alpha)(1 + V e^{-sigma^2/2}) / 2``
    (single-click), ``P = eta_A eta_B / 2`` and ``F = (1 + V) / 2`` (Barrett-Kok at
    ``alpha = 1/2``); dark counts add ``|dd>`` heralds with probability
    ``2 p_dark (1 - alpha)^2`` (see :func:`leading_order`).

Units: seconds, hertz and radians throughout.  The spin basis of every 4x4 density matrix is
``(|dd>, |db>, |bd>, |bb>)``, index ``2 x_A + x_B`` with ``x = 1`` for bright.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SINGLE_CLICK", "BARRETT_KOK", "PROTOCOLS", "CLASS_NONE", "CLASS_ONE", "CLASS_MANY",
    "LinkParameters", "signal_patterns", "window_classes", "class_distribution",
    "herald_outcomes", "heralded_states", "outcome_probabilities", "p_herald", "fidelity",
    "bell_fidelity", "leading_order", "chsh_max",
    "Timing", "Memory", "mean_attempt_time", "rate", "decoherence_per_attempt",
    "stored_fidelity", "p_before_deadline", "Delivery", "deterministic_delivery",
    "optimal_alpha", "link_efficiency",
    "EmulatorMapping", "emulator_mapping", "probability_to_threshold", "cumulative_thresholds",
    "dark_probability", "direct_transfer_fidelity", "direct_transfer_efficiency",
    "EXPERIMENTS_PATH", "load_experiments", "Experiment", "experiment", "Comparison",
    "compare_published",
]

SINGLE_CLICK = "single-click"
BARRETT_KOK = "barrett-kok"
PROTOCOLS = (SINGLE_CLICK, BARRETT_KOK)

#: Click classes per detector and window; the same codes as ``heraldry.gateware.layouts``
#: (repeated so that the physics imports without the gateware toolchain).
CLASS_NONE, CLASS_ONE, CLASS_MANY = 0, 1, 2

# Spin basis indices, 2 * x_A + x_B with x = 1 for bright.
DD, DB, BD, BB = 0, 1, 2, 3
# Signal (photon) click patterns over the two detectors, as bit masks.
NONE, D0, D1, BOTH = 0, 1, 2, 3


def _pair(value, name):
    if np.ndim(value) == 0:
        value = (value, value)
    value = tuple(float(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} takes one value or one per node/detector, got {value!r}")
    return value


@dataclass(frozen=True)
class LinkParameters:
    """Physical parameters of one heralded link (see the module docstring for the model).

    Parameters
    ----------
    protocol : {"single-click", "barrett-kok"}
        Heralding scheme.
    alpha : float or (float, float)
        Bright-state population of node A and B.  Barrett-Kok normally uses 0.5.
    eta : float or (float, float)
        Probability that a photon emitted by node A (B) is detected, all losses included.
    p_dark : float or (float, float)
        Probability of at least one dark click per detection window, for detector 0 and 1.
    p_double : float
        Double-excitation probability per emission.
    visibility : float
        Two-photon (Hong-Ou-Mandel) visibility ``V`` in [0, 1].
    phase_noise : float
        Standard deviation ``sigma_phi`` of the optical phase, in radians.
    """

    protocol: str = SINGLE_CLICK
    alpha: tuple = (0.1, 0.1)
    eta: tuple = (1e-3, 1e-3)
    p_dark: tuple = (0.0, 0.0)
    p_double: float = 0.0
    visibility: float = 1.0
    phase_noise: float = 0.0

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        for name in ("alpha", "eta", "p_dark"):
            values = _pair(getattr(self, name), name)
            if not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(f"{name} must lie in [0, 1], got {values}")
            object.__setattr__(self, name, values)
        if max(self.p_dark) >= 1.0:
            raise ValueError("p_dark must be below 1")
        for name in ("p_double", "visibility"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "phase_noise", abs(float(self.phase_noise)))

    def replace(self, **changes) -> "LinkParameters":
        """A copy with ``changes`` applied (scalars are broadcast to both nodes)."""
        return dataclasses.replace(self, **changes)

    @property
    def n_windows(self) -> int:
        """Detection windows (rounds) per attempt."""
        return 1 if self.protocol == SINGLE_CLICK else 2

    @property
    def dark_mean(self) -> np.ndarray:
        """Mean number of dark clicks per window for each detector."""
        return -np.log1p(-np.asarray(self.p_dark))


# --- one detection window -------------------------------------------------------------------

def signal_patterns(link: LinkParameters, a_emits: bool, b_emits: bool) -> np.ndarray:
    """Probabilities of the photon-click patterns in one window, dark counts excluded.

    Parameters
    ----------
    link : LinkParameters
    a_emits, b_emits : bool
        Whether node A (B) is bright in this window, i.e. emits a photon.

    Returns
    -------
    numpy.ndarray, shape (4,)
        Indexed by the bit mask of detectors with a photon click: 0 none, 1 detector 0 only,
        2 detector 1 only, 3 both.
    """
    ea = link.eta[0] if a_emits else 0.0
    eb = link.eta[1] if b_emits else 0.0
    p = np.zeros(4)
    p[NONE] = (1 - ea) * (1 - eb)
    # A lone detected photon leaves either port of the balanced splitter.
    one = ea * (1 - eb) + eb * (1 - ea)
    p[D0] += one / 2
    p[D1] += one / 2
    # Two detected photons bunch with probability (1 + V)/2 (HOM), else split.
    two = ea * eb
    same = (1 + link.visibility) / 2
    p[D0] += two * same / 2
    p[D1] += two * same / 2
    p[BOTH] += two * (1 - same)
    return p


def _dark_classes(mu: float) -> np.ndarray:
    """Click-class distribution of Poisson(mu) dark clicks: none, one, many."""
    e = math.exp(-mu)
    return np.array([e, mu * e, -math.expm1(-mu) - mu * e])


def window_classes(link: LinkParameters, a_emits: bool, b_emits: bool) -> np.ndarray:
    """Joint click-class distribution of the two detectors in one window, dark counts included.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        ``P[c0, c1]`` with ``c`` in (none, one, many) for detector 0 and 1.
    """
    sig = signal_patterns(link, a_emits, b_emits)
    per_detector = []
    for det, mu in enumerate(link.dark_mean):
        dark = _dark_classes(mu)
        # Class given no photon click is the dark class; a photon click shifts it up by one.
        shifted = np.array([0.0, dark[0], dark[1] + dark[2]])
        per_detector.append((dark, shifted))
    out = np.zeros((3, 3))
    for mask in range(4):
        c0 = per_detector[0][(mask >> 0) & 1]
        c1 = per_detector[1][(mask >> 1) & 1]
        out += sig[mask] * np.outer(c0, c1)
    return out


def _priors(link: LinkParameters) -> np.ndarray:
    a, b = link.alpha
    return np.array([(1 - a) * (1 - b), (1 - a) * b, a * (1 - b), a * b])


def _emitters(x: int) -> tuple[bool, bool]:
    return bool(x & 2), bool(x & 1)


def class_distribution(link: LinkParameters) -> np.ndarray:
    """Distribution of click classes of a whole attempt.

    Returns
    -------
    numpy.ndarray
        Shape (3, 3) for single-click, ``P[c0, c1]``; shape (3, 3, 3, 3) for Barrett-Kok,
        ``P[c0_round1, c1_round1, c0_round2, c1_round2]``.
    """
    prior = _priors(link)
    if link.protocol == SINGLE_CLICK:
        return sum(prior[x] * window_classes(link, *_emitters(x)) for x in range(4))
    # After the pi pulse the spins that were dark are bright: round 2 emitters are 3 - x.
    return sum(prior[x] * np.multiply.outer(window_classes(link, *_emitters(x)),
                                            window_classes(link, *_emitters(3 - x)))
               for x in range(4))


# --- heralded states ------------------------------------------------------------------------

def herald_outcomes(link: LinkParameters) -> list[tuple[tuple[int, ...], int]]:
    """The herald outcomes and their target Bell state.

    Returns
    -------
    list of (detectors, sign)
        ``detectors`` is the clicking detector per round, ``sign`` +1 for ``Psi+`` and -1
        for ``Psi-``.  Order: single-click ``(0,), (1,)``; Barrett-Kok ``(0, 0), (0, 1),
        (1, 0), (1, 1)``.
    """
    if link.protocol == SINGLE_CLICK:
        return [((0,), +1), ((1,), -1)]
    return [((k1, k2), +1 if k1 == k2 else -1) for k1 in (0, 1) for k2 in (0, 1)]


def _single_click_cell(det: int) -> tuple[int, int]:
    return (CLASS_ONE, CLASS_NONE) if det == 0 else (CLASS_NONE, CLASS_ONE)


def heralded_states(link: LinkParameters) -> np.ndarray:
    """Unnormalised spin states conditioned on each herald outcome.

    Returns
    -------
    numpy.ndarray, shape (n_outcomes, 4, 4)
        ``rho_k`` with ``trace(rho_k)`` the probability of outcome ``k`` (order of
        :func:`herald_outcomes`), in the basis ``(dd, db, bd, bb)``.

    Notes
    -----
    Only the ``bd``/``db`` block carries coherence: every other pair of spin terms differs in
    the photon number reaching a detector or in the loss environment, and both are traced
    out.  The coherence needs the photon to be detected (amplitude ``sqrt(eta_i / 2)`` per
    node), no dark click on either detector (a dark click on the heralding detector would
    make it click twice), indistinguishable photons (``V``), the phase average and the
    double-excitation phase damping.
    """
    prior = _priors(link)
    mixed = math.sqrt(prior[BD] * prior[DB])
    keep = np.exp(-link.dark_mean)          # probability of no dark click, per detector
    outcomes = herald_outcomes(link)
    states = np.zeros((len(outcomes), 4, 4))
    ea, eb = link.eta
    for k, (dets, sign) in enumerate(outcomes):
        rho = np.zeros((4, 4))
        if link.protocol == SINGLE_CLICK:
            cell = _single_click_cell(dets[0])
            for x in range(4):
                rho[x, x] = prior[x] * window_classes(link, *_emitters(x))[cell]
            coherence = (mixed * math.sqrt(ea * eb) / 2 * keep[0] * keep[1] * link.visibility
                         * math.exp(-link.phase_noise ** 2 / 2) * (1 - link.p_double))
        else:
            c1, c2 = _single_click_cell(dets[0]), _single_click_cell(dets[1])
            for x in range(4):
                # The final spins are flipped: initial x ends as 3 - x.
                rho[3 - x, 3 - x] = (prior[x] * window_classes(link, *_emitters(x))[c1]
                                     * window_classes(link, *_emitters(3 - x))[c2])
            coherence = (mixed * ea * eb / 4 * (keep[0] * keep[1]) ** 2 * link.visibility
                         * (1 - link.p_double) ** 2)
        rho[BD, DB] = rho[DB, BD] = sign * coherence
        states[k] = rho
    return states


def outcome_probabilities(link: LinkParameters) -> np.ndarray:
    """Probability of each herald outcome per attempt (order of :func:`herald_outcomes`)."""
    return np.trace(heralded_states(link), axis1=1, axis2=2)


def p_herald(link: LinkParameters) -> float:
    """Probability that one attempt heralds (any outcome)."""
    return float(outcome_probabilities(link).sum())


def bell_fidelity(rho: np.ndarray, sign: int) -> float:
    """Fidelity of a normalised 4x4 state with ``Psi+`` (sign +1) or ``Psi-`` (sign -1)."""
    psi = np.zeros(4)
    psi[BD], psi[DB] = 1 / math.sqrt(2), sign / math.sqrt(2)
    return float(np.real(psi @ rho @ psi))


def fidelity(link: LinkParameters, outcome: int | None = None) -> float:
    """Heralded-state fidelity with the target Bell state.

    Parameters
    ----------
    outcome : int, optional
        Index into :func:`herald_outcomes`; ``None`` gives the average over outcomes,
        weighted by their probabilities.
    """
    states = heralded_states(link)
    signs = [s for _, s in herald_outcomes(link)]
    probs = np.trace(states, axis1=1, axis2=2)
    if outcome is not None:
        if probs[outcome] == 0:
            return float("nan")
        return bell_fidelity(states[outcome] / probs[outcome], signs[outcome])
    total = probs.sum()
    if total == 0:
        return float("nan")
    return float(sum(bell_fidelity(states[k], signs[k]) for k in range(len(signs))) / total)


def _fidelity_parts(link: LinkParameters) -> tuple[float, float, float]:
    """``(p, a, c)``: herald probability and the split ``F = a + c`` of the average heralded
    fidelity into the populations part ``a`` and the coherence part ``c``, which decays."""
    states = heralded_states(link)
    signs = np.array([s for _, s in herald_outcomes(link)])
    p = float(np.trace(states, axis1=1, axis2=2).sum())
    a = float((states[:, BD, BD] + states[:, DB, DB]).sum() / 2 / p)
    c = float((signs * states[:, BD, DB]).sum() / p)
    return p, a, c


def leading_order(link: LinkParameters) -> dict:
    """The leading-order forms quoted in the reference, for comparison with the exact ones.

    Returns
    -------
    dict
        ``p_herald`` and ``fidelity`` (valid for small ``eta`` and no dark counts or double
        excitation; node A's ``alpha`` is used for single-click) and ``p_dark_herald``, the
        probability of a herald caused by dark counts alone on ``|dd>``.
    """
    a = link.alpha[0]
    ea, eb = link.eta
    v, s = link.visibility, link.phase_noise
    if link.protocol == SINGLE_CLICK:
        return {"p_herald": a * (ea + eb),
                "fidelity": (1 - a) * (1 + v * math.exp(-s ** 2 / 2)) / 2,
                "p_dark_herald": sum(link.p_dark) * (1 - a) ** 2}
    return {"p_herald": ea * eb / 2, "fidelity": (1 + v) / 2, "p_dark_herald": float("nan")}


def chsh_max(rho: np.ndarray) -> float:
    """Largest CHSH value of a normalised two-qubit state (Horodecki criterion)."""
    paulis = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]),
              np.array([[1, 0], [0, -1]])]
    t = np.array([[np.real(np.trace(rho @ np.kron(p, q))) for q in paulis] for p in paulis])
    eig = np.sort(np.linalg.eigvalsh(t.T @ t))
    return float(2 * math.sqrt(eig[-1] + eig[-2]))


# --- rate, decoherence, deterministic delivery ----------------------------------------------

@dataclass(frozen=True)
class Timing:
    """How attempts are scheduled.

    Parameters
    ----------
    attempt_duration : float
        One attempt period, seconds.
    batch_length : int
        Attempts per batch; 0 for no batching.
    batch_pause : float
        Pause after each batch (e.g. a charge-state check), seconds.
    recalibration_interval : float
        Time spent attempting (pauses included) between two recalibrations; 0 for none.
    recalibration_duration : float
        Duration of one recalibration (e.g. phase stabilisation), seconds.
    herald_overhead : float
        Time lost after each herald (state use, readout), seconds.
    """

    attempt_duration: float
    batch_length: int = 0
    batch_pause: float = 0.0
    recalibration_interval: float = 0.0
    recalibration_duration: float = 0.0
    herald_overhead: float = 0.0

    def __post_init__(self):
        if not self.attempt_duration > 0:
            raise ValueError("attempt_duration must be positive")
        if self.batch_length < 0 or min(self.batch_pause, self.recalibration_interval,
                                        self.recalibration_duration, self.herald_overhead) < 0:
            raise ValueError("timing overheads must be non-negative")

    @property
    def slot(self) -> float:
        """Mean time per attempt inside a run: the period plus the batch pause's share."""
        pause = self.batch_pause / self.batch_length if self.batch_length else 0.0
        return self.attempt_duration + pause


def mean_attempt_time(timing: Timing) -> float:
    """Mean wall-clock time per attempt, batch pauses and recalibrations included."""
    t = timing.slot
    if timing.recalibration_interval > 0:
        t *= (timing.recalibration_interval + timing.recalibration_duration) \
            / timing.recalibration_interval
    return t


def rate(p: float | LinkParameters, timing: Timing) -> float:
    """Heralds per second: ``1 / (mean_attempt_time / p + herald_overhead)``.

    The waiting time is geometric, so a long run yields on average ``1/p`` attempts per herald.
    """
    if isinstance(p, LinkParameters):
        p = p_herald(p)
    if p <= 0:
        return 0.0
    return 1.0 / (mean_attempt_time(timing) / p + timing.herald_overhead)


@dataclass(frozen=True)
class Memory:
    """Decoherence of the stored entangled state.

    Parameters
    ----------
    t2 : float
        1/e time of the exponential decay of the pair's coherence, seconds (``inf``: none).
        A decoherence *rate* ``Gamma`` reported in hertz is ``t2 = 1 / Gamma``.
    dephasing_per_attempt : float
        Probability of a phase flip on the pair for each later attempt slot (e.g. from the
        entangling attempts of a multiplexed memory); multiplies the coherence by
        ``1 - 2 p``.
    """

    t2: float = math.inf
    dephasing_per_attempt: float = 0.0


def decoherence_per_attempt(memory: Memory, timing: Timing) -> float:
    """Factor ``d`` by which the stored coherence shrinks per attempt slot."""
    d = 1.0 - 2.0 * memory.dephasing_per_attempt
    if math.isfinite(memory.t2):
        d *= math.exp(-timing.slot / memory.t2)
    return d


def stored_fidelity(link: LinkParameters, n: int | np.ndarray, memory: Memory,
                    timing: Timing) -> np.ndarray:
    """Average fidelity of a heralded state after ``n`` further attempt slots.

    ``F(n) = a + c d^n``: the populations part ``a`` survives dephasing, the coherence part
    ``c`` decays by ``d`` (:func:`decoherence_per_attempt`) per slot; ``F(0)`` is
    :func:`fidelity`.  For a perfect Bell state this is ``1/2 + 1/2 exp(-n t / T2)``.
    """
    _, a, c = _fidelity_parts(link)
    return a + c * decoherence_per_attempt(memory, timing) ** np.asarray(n)


def p_before_deadline(p: float, deadline: int) -> float:
    """Probability of at least one herald within ``deadline`` attempts, ``1 - (1-p)^N``."""
    return float(-np.expm1(deadline * np.log1p(-p))) if p < 1 else 1.0


@dataclass(frozen=True)
class Delivery:
    """Outcome of deterministic delivery with a deadline of ``deadline`` attempts.

    Attributes
    ----------
    p_success : float
        Probability of a herald before the deadline.
    f_success : float
        Average fidelity, at the deadline, of a state heralded before it (decoherence
        during the remaining slots included).
    f_delivered : float
        ``p_success * f_success + (1 - p_success) * f_unentangled``.
    """

    deadline: int
    p_success: float
    f_success: float
    f_unentangled: float
    f_delivered: float


def deterministic_delivery(link: LinkParameters, timing: Timing, memory: Memory,
                           deadline: int, f_unentangled: float = 0.5) -> Delivery:
    """Deterministic delivery: attempt until a herald or ``deadline`` attempts, then deliver.

    A herald in attempt ``k`` (probability ``p q^(k-1)``, ``q = 1 - p``) is stored for
    ``N - k`` slots, so the delivered fidelity is exactly::

        F_det = a P + c p sum_{k=1..N} q^(k-1) d^(N-k) + q^N F_unent
              = a P + c p (q^N - d^N) / (q - d) + q^N F_unent,

    with ``P = 1 - q^N``, ``F_heralded = a + c`` (:func:`stored_fidelity`) and ``d`` the
    per-slot decoherence factor.  ``f_unentangled`` is the fidelity of the fallback state
    delivered when no herald came (0.5 for a product state like ``|bd>``).
    """
    if deadline < 1:
        raise ValueError("deadline must be at least one attempt")
    if p_herald(link) == 0:
        return Delivery(deadline, 0.0, float("nan"), f_unentangled, f_unentangled)
    p, a, c = _fidelity_parts(link)
    q = 1.0 - p
    d = decoherence_per_attempt(memory, timing)
    success = p_before_deadline(p, deadline)
    if d <= 0:
        weighted = p * q ** (deadline - 1)     # only a herald in the last slot survives
    else:
        # p d^(N-1) sum_j (q/d)^j, written with expm1/log1p to stay accurate when q ~ d.
        x = (q - d) / d
        series = deadline if x == 0 else math.expm1(deadline * math.log1p(x)) / x
        weighted = p * d ** (deadline - 1) * series
    fail = q ** deadline
    f_success = (a * success + c * weighted) / success if success > 0 else float("nan")
    f_det = a * success + c * weighted + fail * f_unentangled
    return Delivery(deadline, success, f_success, f_unentangled, f_det)


def _golden_max(f, lo, hi, tol=1e-10):
    """Maximum of a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    x = (a + b) / 2
    return x, f(x)


def optimal_alpha(link: LinkParameters, timing: Timing, memory: Memory, deadline: int,
                  f_unentangled: float = 0.5, bounds: tuple[float, float] = (1e-4, 0.5),
                  grid: int = 97) -> tuple[float, Delivery]:
    """The bright-state population (equal on both nodes) that maximises ``F_det``.

    A grid scan locates the best bracket (``F_det`` need not be globally unimodal when dark
    counts dominate at small ``alpha``), then a golden-section search refines it.

    Returns
    -------
    alpha : float
    delivery : Delivery
        The delivery at that ``alpha``.
    """
    def f_det(alpha):
        return deterministic_delivery(link.replace(alpha=alpha), timing, memory, deadline,
                                      f_unentangled).f_delivered

    xs = np.linspace(bounds[0], bounds[1], grid)
    values = [f_det(x) for x in xs]
    i = int(np.argmax(values))
    lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, grid - 1)]
    alpha, _ = _golden_max(f_det, lo, hi)
    if values[i] > f_det(alpha):            # plateau at a bound: keep the grid point
        alpha = float(xs[i])
    return float(alpha), deterministic_delivery(link.replace(alpha=alpha), timing, memory,
                                                deadline, f_unentangled)


def link_efficiency(link: LinkParameters, timing: Timing, memory: Memory) -> float:
    """Humphreys' link efficiency: entangling rate over decoherence rate ``1 / t2``."""
    return rate(link, timing) * memory.t2


# --- the link emulator ----------------------------------------------------------------------

def probability_to_threshold(p) -> np.ndarray:
    """32-bit thresholds for probabilities: ``round(p * 2**32)`` clipped to ``2**32 - 1``.

    A uniform draw ``u`` (uint32) fires when ``u < threshold``, so the firing probability is
    ``threshold / 2**32``: exact to ``2**-33``, except that ``p = 1`` fires with probability
    ``1 - 2**-32``.
    """
    p = np.asarray(p, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    return np.minimum(np.round(p * 2.0 ** 32), 2 ** 32 - 1).astype(np.uint32)


def cumulative_thresholds(p) -> np.ndarray:
    """Thresholds to pick one of ``len(p)`` outcomes with a single uint32 draw ``u``.

    Returns ``t`` of length ``len(p) - 1`` (thresholds of the cumulative sums); outcome ``i``
    is chosen when ``t[i-1] <= u < t[i]`` (with ``t[-1] = 0`` and ``t[len(p)-1] = 2**32``),
    i.e. the outcome is the number of thresholds ``<= u``.
    """
    p = np.asarray(p, dtype=float)
    return probability_to_threshold(np.clip(np.cumsum(p)[:-1], 0.0, 1.0))


@dataclass(frozen=True)
class EmulatorMapping:
    """What the link emulator needs to reproduce the model, per attempt.

    The emulator draws the hidden spin configuration ``x`` (``dd, db, bd, bb``) once per
    attempt from ``config_probabilities``; then, independently per window ``w``, the photon
    click pattern (none, detector 0 only, detector 1 only, both) from
    ``conditional_patterns[x, w]``; and, independently per detector and clock cycle, a dark
    click with probability ``dark_per_cycle``.  Given ``x`` the windows are independent, so
    this reproduces the model's joint statistics exactly (dark counts: the probability of no
    dark click in a window exactly, that of one dark click up to ``O(mu^2 / W)``, the
    Bernoulli-per-cycle approximation of the Poisson process).

    Attributes
    ----------
    config_probabilities : ndarray, shape (4,)
    conditional_patterns : ndarray, shape (4, n_windows, 4)
    window_patterns : ndarray, shape (n_windows, 4)
        Marginal photon-pattern probabilities of each window (for an emulator that draws
        windows independently; for Barrett-Kok this loses the rounds' correlation).
    joint_patterns : ndarray, shape (4,) * n_windows
        Joint photon-pattern probabilities over the windows of an attempt.
    dark_per_cycle : ndarray, shape (2,)
        Dark-click probability per detector and clock cycle.
    window_cycles : int
        Window length in clock cycles used for ``dark_per_cycle``.
    """

    protocol: str
    config_probabilities: np.ndarray
    conditional_patterns: np.ndarray
    window_patterns: np.ndarray
    joint_patterns: np.ndarray
    dark_per_cycle: np.ndarray
    window_cycles: int

    def thresholds(self) -> dict:
        """The uint32 thresholds (see :func:`probability_to_threshold`) of every draw."""
        return {
            "config": cumulative_thresholds(self.config_probabilities),
            "patterns": np.array([[cumulative_thresholds(self.conditional_patterns[x, w])
                                   for w in range(self.conditional_patterns.shape[1])]
                                  for x in range(4)]),
            "dark": probability_to_threshold(self.dark_per_cycle),
        }

    def window_probabilities(self, match: str = "marginal") -> list[dict]:
        """Photon click-pattern probabilities per window for an emulator that draws every
        window independently (as :mod:`heraldry.gateware.emulator` does): one dict per
        window mapping pattern ``k`` (bit ``c`` set: detector ``c`` clicks; 1, 2, 3) to its
        probability, the rest being "no click".

        Parameters
        ----------
        match : {"marginal", "herald"}
            ``"marginal"``: each window's exact marginal.  ``"herald"``: for Barrett-Kok, the
            clicking patterns of every window are scaled by a common factor so that the
            product of the windows' single-click probabilities equals the model's
            (photon-only) two-round herald probability, which independent windows with the
            marginals would overestimate (about twice, at ``alpha = 1/2``): rounds are
            anti-correlated because round 2's photon comes from the node that was dark.
            Single-click is unaffected.
        """
        probs = self.window_patterns.copy()
        if match == "herald" and probs.shape[0] == 2:
            j = self.joint_patterns
            exact = j[D0, D0] + j[D0, D1] + j[D1, D0] + j[D1, D1]
            indep = np.prod(probs[:, D0] + probs[:, D1])
            if indep > 0:
                probs[:, 1:] *= math.sqrt(exact / indep)
        elif match not in ("marginal", "herald"):
            raise ValueError(f"match must be 'marginal' or 'herald', got {match!r}")
        if np.any(probs[:, 1:].sum(axis=1) > 1 + 1e-12):
            raise ValueError("scaled click-pattern probabilities exceed 1")
        return [{k: float(probs[w, k]) for k in (D0, D1, BOTH)} for w in range(len(probs))]

    def register_thresholds(self, match: str = "marginal") -> dict:
        """The emulator's registers: per window the *cumulative* thresholds of patterns
        1, 2, 3 (pattern ``k`` fires when ``t[k-2] <= u < t[k-1]``, no click when ``u`` is
        above all), and per detector the dark-click threshold per cycle (fires when
        ``u < t``).  See :meth:`window_probabilities` for ``match``."""
        windows = []
        for w in self.window_probabilities(match):
            cum = np.cumsum([w[D0], w[D1], w[BOTH]])
            windows.append([int(t) for t in probability_to_threshold(np.clip(cum, 0, 1))])
        return {"windows": windows,
                "dark": [int(t) for t in probability_to_threshold(self.dark_per_cycle)]}

    def herald_probability_independent_windows(self) -> float:
        """Herald probability of an emulator drawing windows from ``window_patterns``
        independently, without dark counts (to judge that approximation)."""
        w = self.window_patterns
        if w.shape[0] == 1:
            return float(w[0, D0] + w[0, D1])
        return float((w[0, D0] + w[0, D1]) * (w[1, D0] + w[1, D1]))


def dark_probability(rate_hz, window_s) -> np.ndarray:
    """Probability of at least one dark click in a window: ``1 - exp(-R t)``."""
    return -np.expm1(-np.asarray(rate_hz, dtype=float) * np.asarray(window_s, dtype=float))


def emulator_mapping(link: LinkParameters, window_cycles: int, clock_hz: float | None = None,
                     dark_count_rate_hz=None) -> EmulatorMapping:
    """Map physical parameters to the emulator's pattern and dark-count probabilities.

    Parameters
    ----------
    link : LinkParameters
        Its ``p_dark`` (per window) sets the dark counts unless ``dark_count_rate_hz`` is
        given.
    window_cycles : int
        Detection-window length in clock cycles.
    clock_hz : float, optional
        Clock frequency; needed with ``dark_count_rate_hz``.
    dark_count_rate_hz : float or (float, float), optional
        Dark-count rate per detector; then ``dark_per_cycle = 1 - exp(-R / clock_hz)``.
    """
    if window_cycles < 1:
        raise ValueError("window_cycles must be at least 1")
    if dark_count_rate_hz is not None:
        if not clock_hz:
            raise ValueError("clock_hz is needed to convert a dark-count rate")
        dark = dark_probability(_pair(dark_count_rate_hz, "dark_count_rate_hz"), 1 / clock_hz)
    else:
        dark = -np.expm1(-link.dark_mean / window_cycles)
    prior = _priors(link)
    nw = link.n_windows
    cond = np.zeros((4, nw, 4))
    for x in range(4):
        cond[x, 0] = signal_patterns(link, *_emitters(x))
        if nw == 2:
            cond[x, 1] = signal_patterns(link, *_emitters(3 - x))
    if nw == 1:
        joint = prior @ cond[:, 0]
    else:
        joint = np.einsum("x,xi,xj->ij", prior, cond[:, 0], cond[:, 1])
    marginal = np.einsum("x,xwi->wi", prior, cond)
    return EmulatorMapping(link.protocol, prior, cond, marginal, joint, np.asarray(dark),
                           int(window_cycles))


# --- deterministic (non-heralded) transfer, for Kurpiers et al. 2018 -------------------------

def direct_transfer_fidelity(efficiency: float) -> float:
    """Entanglement fidelity of a direct photon transfer with efficiency ``eta``.

    Sending one half of a Bell state through a pure-loss (amplitude-damping) channel of
    transmission ``eta`` leaves fidelity ``(1 + sqrt(eta))^2 / 4``; this is also the channel's
    process fidelity.  Used for deterministic microwave links, which are not heralded.
    """
    return (1 + math.sqrt(efficiency)) ** 2 / 4


def direct_transfer_efficiency(fid: float) -> float:
    """Inverse of :func:`direct_transfer_fidelity`."""
    return (2 * math.sqrt(fid) - 1) ** 2


# --- published experiments ------------------------------------------------------------------

EXPERIMENTS_PATH = Path(__file__).with_name("experiments.json")


def load_experiments(path: str | Path | None = None) -> dict:
    """The parameter sets of published experiments, with their sources (``experiments.json``)."""
    with open(path or EXPERIMENTS_PATH, encoding="utf-8") as f:
        return json.load(f)


def _value(param):
    return param["value"] if isinstance(param, dict) else param


@dataclass(frozen=True)
class Experiment:
    """One published experiment as model objects.

    ``link`` is ``None`` for non-heralded (direct-transfer) experiments; ``deadline``
    (attempts) is ``None`` when the experiment did not deliver deterministically.
    """

    name: str
    title: str
    protocol: str
    link: LinkParameters | None
    timing: Timing
    memory: Memory
    deadline: int | None
    f_unentangled: float
    values: dict


def _build(name: str, spec: dict, values: dict) -> Experiment:
    v = values
    protocol = spec["protocol"]
    link = None
    if protocol in PROTOCOLS:
        eta = float(np.prod([v[k] for k in spec["eta_factors"]]))
        window = v.get("window_s", 0.0)
        link = LinkParameters(
            protocol=protocol, alpha=v.get("alpha", 0.5), eta=eta,
            p_dark=float(dark_probability(v.get("dark_count_rate_hz", 0.0), window)),
            p_double=v.get("p_double", 0.0), visibility=v.get("visibility", 1.0),
            phase_noise=v.get("phase_noise_rad", 0.0))
    timing = Timing(
        attempt_duration=v["attempt_duration_s"], batch_length=int(v.get("batch_length", 0)),
        batch_pause=v.get("batch_pause_s", 0.0),
        recalibration_interval=v.get("recalibration_interval_s", 0.0),
        recalibration_duration=v.get("recalibration_duration_s", 0.0))
    rate_dec = v.get("decoherence_rate_hz", 0.0)
    memory = Memory(t2=1 / rate_dec if rate_dec else math.inf)
    deadline = int(v["deadline_attempts"]) if "deadline_attempts" in v else None
    return Experiment(name, spec["title"], protocol, link, timing, memory, deadline,
                      v.get("f_unentangled", 0.5), values)


def experiment(name: str, data: dict | None = None, **overrides) -> Experiment:
    """Model objects for experiment ``name`` at the nominal parameter values.

    ``overrides`` replace parameter values by name (e.g. ``alpha=0.2``).
    """
    data = data or load_experiments()
    spec = data["experiments"][name]
    values = {k: _value(p) for k, p in spec["parameters"].items()}
    unknown = set(overrides) - set(values)
    if unknown:
        raise KeyError(f"unknown parameters for {name}: {sorted(unknown)}")
    values.update(overrides)
    return _build(name, spec, values)


def _evaluate(quantity: str, exp: Experiment, spec: dict) -> float:
    link, timing, v = exp.link, exp.timing, exp.values
    if quantity == "p_herald":
        return p_herald(link)
    if quantity == "fidelity":
        return fidelity(link)
    if quantity == "rate_hz":
        return rate(link, timing)
    if quantity == "max_rate_over_alpha_budget_hz":
        return max(rate(link.replace(alpha=float(a)), timing) for a in v["alpha_budget"])
    if quantity == "chsh_max":
        states = heralded_states(link)
        probs = np.trace(states, axis1=1, axis2=2)
        # Every outcome is its own Bell state; rotate Psi- to Psi+ (a local Z) and average.
        z = np.diag([1.0, -1.0, 1.0, -1.0])
        rho = sum(s if sign > 0 else z @ s @ z
                  for s, (_, sign) in zip(states, herald_outcomes(link))) / probs.sum()
        return chsh_max(rho)
    if quantity == "events_in_run":
        return rate(link, timing) * v["run_duration_s"]
    if quantity == "delivered_fidelity":
        return deterministic_delivery(link, timing, exp.memory, exp.deadline,
                                      exp.f_unentangled).f_delivered
    if quantity == "deterministic_rate_hz":
        return 1.0 / mean_attempt_time(timing)
    if quantity == "direct_transfer_fidelity":
        # The pure-loss channel's efficiency, inferred from the measured process fidelity.
        return direct_transfer_fidelity(direct_transfer_efficiency(v["transfer_process_fidelity"]))
    raise KeyError(f"unknown model quantity {quantity!r}")


@dataclass(frozen=True)
class Comparison:
    """A published figure beside the model's number.

    ``model`` is at the nominal parameters; ``model_low``/``model_high`` span the corners of
    the parameters' stated ranges.  ``passed`` is ``None`` for figures the model cannot
    predict with the parameters at hand (``check == "documented"``; see ``note``/``missing``).
    """

    experiment: str
    figure: str
    quantity: str
    published: float
    uncertainty: float
    qualifier: str
    model: float
    model_low: float
    model_high: float
    check: str
    passed: bool | None
    status: str
    note: str
    missing: tuple


def _corners(spec: dict):
    ranged = {k: p["range"] for k, p in spec["parameters"].items()
              if isinstance(p, dict) and "range" in p}
    keys = sorted(ranged)
    for bits in range(2 ** len(keys)):
        yield {k: ranged[k][(bits >> i) & 1] for i, k in enumerate(keys)}


def compare_published(name: str | None = None, data: dict | None = None) -> list[Comparison]:
    """Every published figure of ``name`` (or of all experiments) beside the model.

    Checks: ``interval`` passes when the published value lies within the model's range
    widened by the stated uncertainty; ``order_of_magnitude`` when it lies within a factor
    10 of that range; ``lower_bound`` when the whole model range exceeds the published bound;
    ``documented`` is not judged.
    """
    data = data or load_experiments()
    names = [name] if name else list(data["experiments"])
    rows = []
    for n in names:
        spec = data["experiments"][n]
        nominal = experiment(n, data)
        for fig in spec["published"]:
            q = fig["model"]
            model = _evaluate(q, nominal, fig)
            corner_values = [_evaluate(q, experiment(n, data, **c), fig) for c in _corners(spec)]
            lo, hi = min(corner_values + [model]), max(corner_values + [model])
            value, unc = float(fig["value"]), float(fig.get("uncertainty", 0.0))
            check = fig["check"]
            # A relative 1e-9 absorbs float rounding (1 / 20e-6 is not exactly 50e3).
            slack = 1e-9 * abs(value)
            if check == "interval":
                passed = lo - unc - slack <= value <= hi + unc + slack
            elif check == "order_of_magnitude":
                passed = lo / 10 <= value <= hi * 10
            elif check == "lower_bound":
                passed = lo > value
            elif check == "documented":
                passed = None
            else:
                raise ValueError(f"unknown check {check!r}")
            rows.append(Comparison(n, fig["figure"], q, value, unc, fig.get("qualifier", ""),
                                   model, lo, hi, check, passed, fig.get("status", ""),
                                   fig.get("note", ""), tuple(fig.get("missing", ()))))
    return rows
