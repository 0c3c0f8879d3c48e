"""Closed forms of heraldry.sim.physics against an independent density-matrix simulation.

The simulation below knows nothing of the closed forms: it builds the spins and a truncated
Fock space of the optical modes, applies the emission isometry, the double-excitation phase
damping, the optical phase (averaged by Gauss-Hermite quadrature), the loss channels, the
beam-splitter unitary (by expanding creation operators) and the threshold-detector POVMs
with Poisson dark clicks, and reads off the click-class statistics and the conditional spin
states.  The closed forms must agree with it to 1e-9 over a grid of parameters.
"""

import itertools
import math

import numpy as np
import pytest

from heraldry.sim import physics as ph

TOL = 1e-9


# --- an explicit density-matrix model of one heralded link ----------------------------------

class FockSpace:
    """Truncated Fock space of ``len(cutoffs)`` optical modes (mode ``m`` holds at most
    ``cutoffs[m]`` photons)."""

    def __init__(self, cutoffs, groups=()):
        self.cutoffs = tuple(cutoffs)
        # ``groups``: (modes, max_total) pairs that bound the photons in a set of modes.  Loss
        # and a splitter acting within a group keep the space closed, and the smaller space
        # keeps the simulation quick.
        self.states = [s for s in itertools.product(*[range(c + 1) for c in cutoffs])
                       if all(sum(s[m] for m in modes) <= most for modes, most in groups)]
        self.index = {s: i for i, s in enumerate(self.states)}
        self.dim = len(self.states)

    def loss_kraus(self, mode, transmission):
        """Kraus operators of a pure-loss channel on ``mode``: losing ``k`` photons."""
        ops = []
        for k in range(self.cutoffs[mode] + 1):
            op = np.zeros((self.dim, self.dim))
            for i, s in enumerate(self.states):
                n = s[mode]
                if n < k:
                    continue
                t = list(s)
                t[mode] = n - k
                op[self.index[tuple(t)], i] = math.sqrt(
                    math.comb(n, k) * transmission ** (n - k) * (1 - transmission) ** k)
            ops.append(op)
        return ops

    def beam_splitter(self, mode_a, mode_b):
        """50:50 splitter: a^dag -> (c^dag + d^dag)/sqrt2, b^dag -> (c^dag - d^dag)/sqrt2,
        the outputs c and d occupying the slots of a and b."""
        u = np.zeros((self.dim, self.dim))
        for i, s in enumerate(self.states):
            na, nb = s[mode_a], s[mode_b]
            norm = 1 / math.sqrt(math.factorial(na) * math.factorial(nb)) / 2 ** ((na + nb) / 2)
            # (c+d)^na (c-d)^nb = sum C(na,i) C(nb,j) (-1)^j c^(na-i+nb-j) d^(i+j)
            for ia in range(na + 1):
                for jb in range(nb + 1):
                    nc, nd = na - ia + nb - jb, ia + jb
                    coeff = math.comb(na, ia) * math.comb(nb, jb) * (-1) ** jb
                    t = list(s)
                    t[mode_a], t[mode_b] = nc, nd
                    # Outputs beyond the cutoffs only arise from input states that are never
                    # populated; the trace check in the test would reveal a truncation.
                    if tuple(t) in self.index:
                        u[self.index[tuple(t)], i] += (
                            norm * coeff * math.sqrt(math.factorial(nc) * math.factorial(nd)))
        return u


def dark_class_probs(mu, photon):
    """P(click class | photon click or not) for Poisson(mu) dark clicks."""
    p0, p1 = math.exp(-mu), mu * math.exp(-mu)
    if photon:
        return np.array([0.0, p0, 1 - p0])
    return np.array([p0, p1, 1 - p0 - p1])


class DensityMatrixLink:
    """Density-matrix simulation of the module's model, written from the physics.

    Modes are ``(port, internal)`` with port 0 = node A's fibre (then detector 0) and port 1
    = node B's fibre (then detector 1).  In the "same" branch (probability V) both photons use
    internal mode 0; in the "orthogonal" branch B's photon uses internal mode 1.
    """

    def __init__(self, link, quadrature=24):
        self.link = link
        if link.phase_noise == 0:
            quadrature = 1
        x, w = np.polynomial.hermite_e.hermegauss(quadrature)
        self.phases = link.phase_noise * x
        self.weights = w / w.sum()
        self.branches = {same: self._optics(same) for same in (True, False)}
        # Double excitation: phase damping of each bright node, as Kraus operators on spins.
        self.spin_kraus = []
        for node in (0, 1):
            bright = np.array([(x >> (1 - node)) & 1 for x in range(4)], dtype=bool)
            self.spin_kraus.append(
                (np.diag(np.where(bright, math.sqrt(1 - link.p_double), 1.0)),
                 np.diag(np.where(bright, math.sqrt(link.p_double), 0.0))))

    def _optics(self, same):
        """Everything optical of one branch: isometry, phase generator, channels, POVMs."""
        link = self.link
        # At most one photon per node and round: two photons in the "same" branch, one per
        # internal mode in the "orthogonal" branch.
        if same:
            modes, fock = [(0, 0), (1, 0)], FockSpace([2, 2], [((0, 1), 2)])
        else:
            modes = [(0, 0), (0, 1), (1, 0), (1, 1)]
            fock = FockSpace([1, 1, 1, 1], [((0, 2), 1), ((1, 3), 1)])
        a_slot = modes.index((0, 0))
        b_slot = modes.index((1, 0) if same else (1, 1))
        ident = np.eye(4)
        # Emission isometry |x> -> |x> (x) |photons of the bright nodes>.
        iso = np.zeros((4 * fock.dim, 4))
        for x in range(4):
            occ = [0] * len(modes)
            if x & 2:
                occ[a_slot] += 1
            if x & 1:
                occ[b_slot] += 1
            iso[x * fock.dim + fock.index[tuple(occ)], x] = 1.0
        n_b = np.array([sum(s[m] for m, (port, _) in enumerate(modes) if port == 1)
                        for s in fock.states])
        loss = [[np.kron(ident, k) for k in fock.loss_kraus(m, link.eta[port])]
                for m, (port, _) in enumerate(modes)]
        splitters = [np.kron(ident, fock.beam_splitter(modes.index((0, i)),
                                                       modes.index((1, i))))
                     for i in sorted({i for _, i in modes})]
        # Threshold detection with dark clicks: diagonal POVM per click-class pair.
        mus = link.dark_mean
        povm = {}
        for c0 in range(3):
            for c1 in range(3):
                e = np.empty(fock.dim)
                for f, s in enumerate(fock.states):
                    n = [sum(s[m] for m, (port, _) in enumerate(modes) if port == det)
                         for det in (0, 1)]
                    e[f] = (dark_class_probs(mus[0], n[0] > 0)[c0]
                            * dark_class_probs(mus[1], n[1] > 0)[c1])
                povm[(c0, c1)] = e
        return dict(fock=fock, iso=iso, n_b=n_b, loss=loss, splitters=splitters, povm=povm)

    def _round(self, rho_spin, same, phi):
        """One emission-and-detection round: returns {(c0, c1): unnormalised spin state}."""
        o = self.branches[same]
        for k0, k1 in self.spin_kraus:
            rho_spin = k0 @ rho_spin @ k0.T + k1 @ rho_spin @ k1.T
        rho = (o["iso"] @ rho_spin @ o["iso"].T).astype(complex)
        # Optical phase on B's fibre: exp(i phi n_B).
        phase = np.tile(np.exp(1j * phi * o["n_b"]), 4)
        rho = phase[:, None] * rho * phase.conj()[None, :]
        for kraus in o["loss"]:
            rho = sum(k @ rho @ k.T for k in kraus)
        for bs in o["splitters"]:
            rho = bs @ rho @ bs.T
        dim = o["fock"].dim
        blocks = rho.reshape(4, dim, 4, dim)
        return {c: np.einsum("f,xfyf->xy", e, blocks) for c, e in o["povm"].items()}

    def run(self):
        """Returns ``{classes: unnormalised spin state}`` averaged over phase and branch;
        ``classes`` is ``(c0, c1)`` per round, flattened."""
        link = self.link
        a, b = link.alpha
        psi = np.kron([math.sqrt(1 - a), math.sqrt(a)], [math.sqrt(1 - b), math.sqrt(b)])
        rho0 = np.outer(psi, psi)
        flip = np.kron([[0, 1], [1, 0]], [[0, 1], [1, 0]])
        total = {}
        for same, p_branch in ((True, link.visibility), (False, 1 - link.visibility)):
            if p_branch == 0:
                continue
            for phi, w in zip(self.phases, self.weights):
                first = self._round(rho0, same, phi)
                if link.protocol == ph.SINGLE_CLICK:
                    results = first
                else:
                    results = {}
                    for c, r in first.items():
                        for c2, r2 in self._round(flip @ r @ flip.T, same, phi).items():
                            results[c + c2] = r2
                for c, r in results.items():
                    total[c] = total.get(c, 0) + p_branch * w * r
        return total


# --- the grid ---------------------------------------------------------------------------------

def random_links(protocol, n, seed):
    rng = np.random.default_rng(seed)
    links = []
    for _ in range(n):
        links.append(ph.LinkParameters(
            protocol=protocol,
            alpha=tuple(rng.uniform(0.01, 0.99, 2)),
            eta=tuple(rng.choice([rng.uniform(0, 1), rng.uniform(0, 0.05)], 2)),
            p_dark=tuple(rng.choice([0.0, rng.uniform(0, 0.3), rng.uniform(0, 1e-3)], 2)),
            p_double=float(rng.choice([0.0, rng.uniform(0, 0.3)])),
            visibility=float(rng.uniform(0, 1)),
            phase_noise=float(rng.choice([0.0, rng.uniform(0, 1.5)]))))
    return links


EDGE = [
    dict(alpha=0.5, eta=1.0, p_dark=0.0, p_double=0.0, visibility=1.0, phase_noise=0.0),
    dict(alpha=1.0, eta=0.7, p_dark=0.2, p_double=0.1, visibility=0.0, phase_noise=0.3),
    dict(alpha=(0.0, 0.4), eta=(0.9, 0.2), p_dark=(0.1, 0.0), p_double=1.0, visibility=0.5,
         phase_noise=2.0),
]

GRID = ([ph.LinkParameters(protocol=ph.SINGLE_CLICK, **e) for e in EDGE]
        + random_links(ph.SINGLE_CLICK, 60, 1)
        + [ph.LinkParameters(protocol=ph.BARRETT_KOK, **e) for e in EDGE]
        + random_links(ph.BARRETT_KOK, 30, 2))


def _class_key(dets):
    return tuple(c for d in dets for c in ph._single_click_cell(d))


@pytest.mark.parametrize("link", GRID, ids=lambda l: f"{l.protocol}")
def test_closed_forms_match_density_matrix(link):
    dm = DensityMatrixLink(link).run()
    # Total probability is conserved by the simulation itself.
    assert abs(sum(np.trace(r).real for r in dm.values()) - 1) < TOL
    # Every click-class pattern of the attempt.
    classes = ph.class_distribution(link)
    for key, r in dm.items():
        assert abs(np.trace(r).real - classes[key]) < TOL, key
    # The heralded spin states, element by element.
    states = ph.heralded_states(link)
    for k, (dets, sign) in enumerate(ph.herald_outcomes(link)):
        sim = dm[_class_key(dets)]
        assert np.max(np.abs(sim.imag)) < TOL
        np.testing.assert_allclose(states[k], sim.real, atol=TOL, rtol=0)
        if np.trace(sim).real > 1e-6:
            f_sim = ph.bell_fidelity(sim.real / np.trace(sim).real, sign)
            assert abs(ph.fidelity(link, k) - f_sim) < 1e-7


def test_density_matrix_model_is_not_trivially_equal():
    """The comparison has teeth: a wrong coherence (sqrt(V) instead of V) is detected."""
    link = ph.LinkParameters(alpha=0.3, eta=0.4, visibility=0.5)
    sim = DensityMatrixLink(link).run()[(1, 0)]
    states = ph.heralded_states(link)
    wrong = states[0].copy()
    wrong[ph.BD, ph.DB] *= math.sqrt(link.visibility) / link.visibility
    assert np.max(np.abs(wrong - sim.real)) > 1e-3
    np.testing.assert_allclose(states[0], sim.real, atol=TOL)


# --- reduction to the leading-order forms of the reference -----------------------------------

@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
@pytest.mark.parametrize("vis,sigma", [(1.0, 0.0), (0.9, 0.4)])
def test_single_click_reduces_to_leading_order(alpha, vis, sigma):
    eta = 1e-7
    link = ph.LinkParameters(alpha=alpha, eta=eta, visibility=vis, phase_noise=sigma)
    lead = ph.leading_order(link)
    assert ph.p_herald(link) == pytest.approx(lead["p_herald"], rel=1e-6)
    assert ph.fidelity(link) == pytest.approx(lead["fidelity"], abs=1e-6)
    # Dark counts: the |dd> heralds.
    dark = link.replace(p_dark=1e-6)
    dd = ph.heralded_states(dark)[:, ph.DD, ph.DD].sum()
    assert dd == pytest.approx(ph.leading_order(dark)["p_dark_herald"], rel=1e-5)


@pytest.mark.parametrize("vis", [1.0, 0.8])
def test_barrett_kok_reduces_to_leading_order(vis):
    link = ph.LinkParameters(protocol=ph.BARRETT_KOK, alpha=0.5, eta=(1e-5, 3e-5),
                             visibility=vis, phase_noise=1.0)
    lead = ph.leading_order(link)
    assert ph.p_herald(link) == pytest.approx(lead["p_herald"], rel=1e-4)
    assert ph.fidelity(link) == pytest.approx(lead["fidelity"], abs=1e-9)


def test_barrett_kok_ignores_phase_noise_and_loss_for_fidelity():
    base = ph.LinkParameters(protocol=ph.BARRETT_KOK, alpha=0.5, eta=0.01, visibility=0.9)
    assert ph.fidelity(base.replace(phase_noise=1.0)) == pytest.approx(ph.fidelity(base),
                                                                     abs=1e-12)
    assert ph.fidelity(base.replace(eta=1e-4)) == pytest.approx(ph.fidelity(base), abs=1e-3)


def test_single_click_tradeoff_in_alpha():
    link = ph.LinkParameters(eta=1e-3, visibility=0.9)
    alphas = [0.05, 0.1, 0.2, 0.4]
    ps = [ph.p_herald(link.replace(alpha=a)) for a in alphas]
    fs = [ph.fidelity(link.replace(alpha=a)) for a in alphas]
    assert all(np.diff(ps) > 0) and all(np.diff(fs) < 0)


def test_outcomes_are_symmetric_and_complete():
    link = ph.LinkParameters(alpha=0.2, eta=0.3, p_dark=0.01, visibility=0.8)
    probs = ph.outcome_probabilities(link)
    assert probs[0] == pytest.approx(probs[1], abs=1e-15)
    classes = ph.class_distribution(link)
    assert classes.sum() == pytest.approx(1, abs=1e-12)
    assert classes[1, 0] + classes[0, 1] == pytest.approx(ph.p_herald(link), abs=1e-15)


def test_parameter_validation():
    with pytest.raises(ValueError):
        ph.LinkParameters(protocol="three-click")
    with pytest.raises(ValueError):
        ph.LinkParameters(eta=1.5)
    with pytest.raises(ValueError):
        ph.LinkParameters(alpha=(0.1, 0.2, 0.3))


# --- rate, decoherence, deterministic delivery -----------------------------------------------

def test_rate_includes_batch_pauses_and_recalibration():
    link = ph.LinkParameters(alpha=0.1, eta=1e-3)
    p = ph.p_herald(link)
    t = ph.Timing(attempt_duration=4e-6, batch_length=2000, batch_pause=300e-6,
                  recalibration_interval=0.150, recalibration_duration=0.030)
    expected_time = (4e-6 + 300e-6 / 2000) * (0.180 / 0.150)
    assert ph.mean_attempt_time(t) == pytest.approx(expected_time, rel=1e-12)
    assert ph.rate(link, t) == pytest.approx(p / expected_time, rel=1e-12)
    t2 = ph.Timing(attempt_duration=4e-6, herald_overhead=1e-3)
    assert ph.rate(p, t2) == pytest.approx(1 / (4e-6 / p + 1e-3), rel=1e-12)


def test_stored_fidelity_decays_to_population_part():
    link = ph.LinkParameters(alpha=0.1, eta=1e-3, visibility=1.0)
    timing = ph.Timing(attempt_duration=1e-6)
    memory = ph.Memory(t2=1e-3)
    f0 = ph.fidelity(link)
    assert ph.stored_fidelity(link, 0, memory, timing) == pytest.approx(f0, abs=1e-12)
    f = ph.stored_fidelity(link, np.array([1000, 10 ** 7]), memory, timing)
    _, a, c = ph._fidelity_parts(link)
    assert f[0] == pytest.approx(a + c * math.exp(-1), rel=1e-12)
    assert f[1] == pytest.approx(a, abs=1e-12)
    # Per-attempt dephasing composes with T2.
    m2 = ph.Memory(t2=1e-3, dephasing_per_attempt=0.01)
    assert ph.decoherence_per_attempt(m2, timing) == pytest.approx(0.98 * math.exp(-1e-3))


def test_deterministic_delivery_matches_explicit_sum():
    link = ph.LinkParameters(alpha=0.15, eta=3e-3, visibility=0.9, phase_noise=0.2)
    timing = ph.Timing(attempt_duration=5e-6)
    memory = ph.Memory(t2=0.01, dephasing_per_attempt=1e-5)
    n = 700
    res = ph.deterministic_delivery(link, timing, memory, n, f_unentangled=0.5)
    p = ph.p_herald(link)
    k = np.arange(1, n + 1)
    pk = p * (1 - p) ** (k - 1)
    fk = ph.stored_fidelity(link, n - k, memory, timing)
    explicit = (pk * fk).sum() + (1 - p) ** n * 0.5
    assert res.f_delivered == pytest.approx(explicit, abs=1e-12)
    assert res.p_success == pytest.approx(1 - (1 - p) ** n, abs=1e-12)
    assert res.f_delivered == pytest.approx(
        res.p_success * res.f_success + (1 - res.p_success) * 0.5, abs=1e-12)


def test_deterministic_delivery_when_decay_equals_failure_rate():
    link = ph.LinkParameters(alpha=0.2, eta=0.01)
    p = ph.p_herald(link)
    timing = ph.Timing(attempt_duration=1e-6)
    memory = ph.Memory(t2=-timing.slot / math.log(1 - p))     # d == q exactly
    res = ph.deterministic_delivery(link, timing, memory, 50)
    k = np.arange(1, 51)
    explicit = (p * (1 - p) ** (k - 1) * ph.stored_fidelity(link, 50 - k, memory, timing)).sum()
    assert res.f_delivered == pytest.approx(explicit + (1 - p) ** 50 * 0.5, abs=1e-12)


def test_optimal_alpha_maximises_delivered_fidelity():
    link = ph.LinkParameters(eta=(3.5e-4, 3.5e-4), visibility=0.9, p_double=0.04,
                             phase_noise=0.25)
    timing = ph.Timing(attempt_duration=4e-6)
    memory = ph.Memory(t2=0.2)
    alpha, best = ph.optimal_alpha(link, timing, memory, 15818)
    assert 0.01 < alpha < 0.5
    for a in (alpha * 0.9, alpha * 1.1, 0.05, 0.3):
        other = ph.deterministic_delivery(link.replace(alpha=a), timing, memory, 15818)
        assert other.f_delivered <= best.f_delivered + 1e-12


# --- emulator mapping ---------------------------------------------------------------------

def test_thresholds():
    t = ph.probability_to_threshold([0.0, 0.5, 1.0, 0.75 * 2 ** -32, 1 - 2 ** -34])
    assert t.dtype == np.uint32
    assert list(t) == [0, 2 ** 31, 2 ** 32 - 1, 1, 2 ** 32 - 1]
    with pytest.raises(ValueError):
        ph.probability_to_threshold(1.1)
    c = ph.cumulative_thresholds([0.25, 0.25, 0.5])
    assert list(c) == [2 ** 30, 2 ** 31]


@pytest.mark.parametrize("protocol", ph.PROTOCOLS)
def test_emulator_mapping_reproduces_herald_statistics(protocol):
    link = ph.LinkParameters(protocol=protocol, alpha=0.3, eta=(0.2, 0.1), p_dark=(0.01, 0.02),
                             visibility=0.7)
    w = 50
    m = ph.emulator_mapping(link, window_cycles=w)
    # Per-cycle Bernoulli darks reproduce "no dark click in the window" exactly.
    assert np.allclose((1 - m.dark_per_cycle) ** w, 1 - np.asarray(link.p_dark), atol=1e-15)
    # Signal patterns drawn as the emulator does, combined with the window's dark classes,
    # give the model's class distribution (exactly, with Poisson darks).
    mus = link.dark_mean
    dark = [np.array([[ph._dark_classes(mu)[0], ph._dark_classes(mu)[1],
                       1 - ph._dark_classes(mu)[:2].sum()],
                      [0, ph._dark_classes(mu)[0], 1 - ph._dark_classes(mu)[0]]])
            for mu in mus]

    def window_table(pattern_probs):
        out = np.zeros((3, 3))
        for mask in range(4):
            out += pattern_probs[mask] * np.outer(dark[0][mask & 1], dark[1][(mask >> 1) & 1])
        return out

    if protocol == ph.SINGLE_CLICK:
        table = sum(m.config_probabilities[x] * window_table(m.conditional_patterns[x, 0])
                    for x in range(4))
    else:
        table = sum(m.config_probabilities[x]
                    * np.multiply.outer(window_table(m.conditional_patterns[x, 0]),
                                        window_table(m.conditional_patterns[x, 1]))
                    for x in range(4))
    np.testing.assert_allclose(table, ph.class_distribution(link), atol=1e-15)
    assert m.joint_patterns.sum() == pytest.approx(1)
    th = m.thresholds()
    assert th["config"].shape == (3,) and th["patterns"].shape == (4, link.n_windows, 3)


def test_emulator_dark_rate_conversion():
    link = ph.LinkParameters()
    m = ph.emulator_mapping(link, window_cycles=8, clock_hz=200e6, dark_count_rate_hz=(20, 100))
    assert m.dark_per_cycle == pytest.approx([20 / 200e6, 100 / 200e6], rel=1e-6)
    assert ph.dark_probability(20, 40e-9) == pytest.approx(8e-7, rel=1e-6)


def test_direct_transfer_fidelity_inverse():
    for eta in (0.0, 0.3, 0.6, 1.0):
        f = ph.direct_transfer_fidelity(eta)
        assert ph.direct_transfer_efficiency(f) == pytest.approx(eta, abs=1e-12)
    assert ph.direct_transfer_fidelity(1.0) == 1.0
    assert ph.direct_transfer_fidelity(0.0) == 0.25


def test_chsh_of_bell_and_product_states():
    psi = np.zeros(4)
    psi[ph.BD] = psi[ph.DB] = 1 / math.sqrt(2)
    assert ph.chsh_max(np.outer(psi, psi)) == pytest.approx(2 * math.sqrt(2))
    prod = np.zeros((4, 4))
    prod[ph.BD, ph.BD] = 1
    assert ph.chsh_max(prod) == pytest.approx(2)


def test_no_photons_no_herald():
    link = ph.LinkParameters(eta=0.0)
    assert ph.p_herald(link) == 0
    assert math.isnan(ph.fidelity(link, 0))
    d = ph.deterministic_delivery(link, ph.Timing(attempt_duration=1e-6), ph.Memory(), 10)
    assert d.p_success == 0 and d.f_delivered == 0.5


@pytest.mark.parametrize("protocol", ph.PROTOCOLS)
def test_emulator_register_thresholds(protocol):
    link = ph.LinkParameters(protocol=protocol, alpha=0.5, eta=(0.02, 0.03), p_dark=1e-4,
                             visibility=0.9)
    m = ph.emulator_mapping(link, window_cycles=10)
    marg = m.window_probabilities("marginal")
    for w, probs in enumerate(marg):
        assert probs[1] + probs[2] + probs[3] == pytest.approx(1 - m.window_patterns[w, 0])
    regs = m.register_thresholds()
    assert len(regs["windows"]) == link.n_windows and len(regs["dark"]) == 2
    for w, t in enumerate(regs["windows"]):
        assert t == sorted(t)
        assert t[-1] == ph.probability_to_threshold(1 - m.window_patterns[w, 0])
    # Matching the herald probability with independent windows.
    hm = m.window_probabilities("herald")
    product = np.prod([p[1] + p[2] for p in hm])
    j = m.joint_patterns
    exact = j[1, 1] + j[1, 2] + j[2, 1] + j[2, 2] if protocol == ph.BARRETT_KOK \
        else j[1] + j[2]
    assert product == pytest.approx(exact, rel=1e-12)
    if protocol == ph.BARRETT_KOK:
        # Independent marginals would overestimate it about twice at alpha = 1/2.
        assert m.herald_probability_independent_windows() / exact == pytest.approx(2, rel=0.05)
    # The same registers as the emulator's own reference computes.
    emu = pytest.importorskip("heraldry.sim.emulator_model")
    for probs, t in zip(marg, regs["windows"]):
        assert emu.pattern_thresholds(probs, 2) == t
    assert [emu.probability_threshold(p) for p in m.dark_per_cycle] == regs["dark"]
