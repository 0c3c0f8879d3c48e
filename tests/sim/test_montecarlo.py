"""The vectorised Monte Carlo against the closed forms, within statistical error."""

import math

import numpy as np
import pytest

from heraldry.sim import montecarlo as mc
from heraldry.sim import physics as ph

Z = 4.5     # bound on |z| for single comparisons; the suite makes a few dozen


def z_binomial(count, n, p):
    return (count - n * p) / math.sqrt(n * p * (1 - p))


SC = ph.LinkParameters(protocol=ph.SINGLE_CLICK, alpha=(0.3, 0.2), eta=(0.05, 0.03),
                       visibility=0.8)
BK = ph.LinkParameters(protocol=ph.BARRETT_KOK, alpha=0.5, eta=(0.25, 0.15), visibility=0.9)
# Dark rates high enough that dark clicks inside windows matter (~0.4 % per window).
SC_TIMING = mc.ClickTiming(window_starts=(100,), window_length=8,
                           dark_count_rate_hz=(1e5, 2e5))
BK_TIMING = mc.ClickTiming(window_starts=(100, 400), window_length=10,
                           dark_count_rate_hz=(2e5, 1e5))


@pytest.fixture(scope="module", params=["sc", "bk"])
def case(request):
    link, timing = (SC, SC_TIMING) if request.param == "sc" else (BK, BK_TIMING)
    sim = mc.LinkMonteCarlo(link, timing, seed=12345)
    n = 2_000_000
    return sim, sim.run(n), n


def test_herald_probability_and_outcomes(case):
    sim, sample, n = case
    model = sim.model_link()
    probs = ph.outcome_probabilities(model)
    assert abs(z_binomial(len(sample.herald_attempt), n, probs.sum())) < Z
    signs = [s for _, s in ph.herald_outcomes(model)]
    p_plus = sum(p for p, s in zip(probs, signs) if s > 0)
    assert abs(z_binomial(np.count_nonzero(sample.herald_outcome == mc.PSI_PLUS), n,
                          p_plus)) < Z


def test_click_class_distribution(case):
    sim, sample, n = case
    table = ph.class_distribution(sim.model_link())
    counts = np.zeros(table.shape)
    flat = sample.classes.reshape(len(sample.attempt), -1)
    np.add.at(counts, tuple(flat.T), 1)
    counts[(0,) * table.ndim] += n - len(sample.attempt)
    assert counts.sum() == n
    z = (counts - n * table) / np.sqrt(np.maximum(n * table * (1 - table), 1e-12))
    # Cells the model forbids must be empty; the others agree within the bound.
    assert np.all(counts[table == 0] == 0)
    assert np.max(np.abs(z[table > 0])) < Z + 0.5
    # A chi-square over the populated cells guards the whole shape.
    expected = n * table
    cells = expected > 20
    chi2 = (((counts - expected) ** 2)[cells] / expected[cells]).sum()
    dof = cells.sum() - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof)


def test_waiting_times_are_geometric(case):
    sim, sample, n = case
    p = ph.p_herald(sim.model_link())
    gaps = np.diff(sample.herald_attempt)
    # Mean gap 1/p, standard deviation sqrt(1-p)/p.
    z = (gaps.mean() - 1 / p) / (math.sqrt(1 - p) / p / math.sqrt(len(gaps)))
    assert abs(z) < Z
    # P(gap == 1) = p.
    assert abs(z_binomial(np.count_nonzero(gaps == 1), len(gaps), p)) < Z


def test_click_times(case):
    sim, sample, n = case
    t = sim.timing
    clicks = sample.clicks
    key = clicks["attempt"] * t.period_cycles + clicks["cycle"]
    assert np.all(np.diff(key) >= 0)
    assert np.all((clicks["cycle"] >= 0) & (clicks["cycle"] < t.period_cycles))
    assert np.all(clicks["attempt"] < n)
    photon = clicks[~clicks["dark"]]
    in_window = np.zeros(len(photon), dtype=bool)
    for s in t.window_starts:
        in_window |= (photon["cycle"] >= s) & (photon["cycle"] < s + t.window_length)
    assert in_window.all()
    # The cycle is the discretised time.
    assert np.all(np.floor(photon["time_ns"] / t.cycle_ns) == photon["cycle"])
    # Dark clicks: Poisson count over the run, uniform over the period.
    dark = clicks[clicks["dark"]]
    for det in (0, 1):
        mean = t.dark_count_rate_hz[det] * n * t.period_cycles / t.clock_hz
        count = np.count_nonzero(dark["channel"] == det)
        assert abs(count - mean) < Z * math.sqrt(mean)
    first_half = np.count_nonzero(dark["cycle"] < t.period_cycles // 2)
    assert abs(z_binomial(first_half, len(dark), 0.5)) < Z
    # Emission is exponential: the mean photon time after the window start is the truncated
    # exponential's (jitter has mean 0; clipping moves a negligible tail).
    span = t.window_length * t.cycle_ns - t.photon_delay_ns
    tau = t.lifetime_ns
    expected = t.photon_delay_ns + tau - span / math.expm1(span / tau)
    after = np.concatenate([photon["time_ns"][
        (photon["cycle"] >= s) & (photon["cycle"] < s + t.window_length)] - s * t.cycle_ns
        for s in t.window_starts])
    assert abs(after.mean() - expected) < Z * after.std() / math.sqrt(len(after)) + 0.02


def test_absolute_clicks_feed_the_golden_model_format(case):
    sim, sample, n = case
    cycles, channels = sample.absolute_clicks()
    assert cycles.dtype == np.int64 and channels.dtype == np.uint8
    assert np.all(np.diff(cycles) >= 0)


def test_herald_rule_is_applied_to_every_attempt(case):
    """Re-derive heralds from the reported classes with the host's protocol objects."""
    protocols = pytest.importorskip("heraldry.host.protocols")
    sim, sample, n = case
    rule = (protocols.SingleClick() if sim.link.protocol == ph.SINGLE_CLICK
            else protocols.BarrettKok())
    k = min(len(sample.attempt), 20000)
    outcomes = np.array([rule.outcome(c) for c in sample.classes[:k]])
    heralded = outcomes > 0
    limit = sample.attempt[k - 1]
    sel = sample.herald_attempt <= limit
    np.testing.assert_array_equal(sample.attempt[:k][heralded], sample.herald_attempt[sel])
    np.testing.assert_array_equal(outcomes[heralded], sample.herald_outcome[sel])


def test_bernoulli_attempts():
    rng = np.random.default_rng(7)
    n, p = 10_000_000, 0.3
    idx = mc._bernoulli_attempts(rng, p, n)
    assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n
    assert abs(z_binomial(len(idx), n, p)) < Z
    assert len(mc._bernoulli_attempts(rng, 0.0, 100)) == 0
    assert len(mc._bernoulli_attempts(rng, 1.0, 100)) == 100
    # Tiny p over many attempts.
    idx = mc._bernoulli_attempts(rng, 1e-8, 10 ** 11)
    assert abs(z_binomial(len(idx), 10 ** 11, 1e-8)) < Z


def test_chunked_run_matches_statistics():
    sim = mc.LinkMonteCarlo(SC, SC_TIMING, seed=3)
    n = 1_000_000
    heralds = 0
    for first, sample in sim.iter_run(n, chunk_events=5000):
        assert sample.n_attempts <= n - first
        heralds += len(sample.herald_attempt)
    assert abs(z_binomial(heralds, n, ph.p_herald(sim.model_link()))) < Z


def test_seed_reproducibility():
    a = mc.LinkMonteCarlo(SC, SC_TIMING, seed=5).run(100_000)
    b = mc.LinkMonteCarlo(SC, SC_TIMING, seed=5).run(100_000)
    np.testing.assert_array_equal(a.herald_attempt, b.herald_attempt)
    np.testing.assert_array_equal(a.clicks, b.clicks)


def test_timing_validation():
    with pytest.raises(ValueError):
        mc.ClickTiming(period_cycles=100, window_starts=(95,), window_length=10)
    with pytest.raises(ValueError):
        mc.ClickTiming(window_starts=(100, 105), window_length=10)
    with pytest.raises(ValueError):
        mc.LinkMonteCarlo(BK, SC_TIMING)


def test_deterministic_delivery_against_closed_form():
    link = ph.LinkParameters(alpha=0.15, eta=2e-3, visibility=0.9, phase_noise=0.2,
                             p_double=0.04)
    timing = ph.Timing(attempt_duration=4e-6)
    memory = ph.Memory(t2=5e-3)
    deadline = 1500
    closed = ph.deterministic_delivery(link, timing, memory, deadline)
    rng = np.random.default_rng(11)
    k = mc.sample_first_herald(ph.p_herald(link), deadline, 400_000, rng)
    assert abs(z_binomial(np.count_nonzero(k), len(k), closed.p_success)) < Z
    mean, err = mc.delivered_fidelity_mc(link, timing, memory, deadline, 400_000, rng=rng)
    assert abs(mean - closed.f_delivered) < Z * err
