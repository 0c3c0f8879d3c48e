"""The virtual board: same records as the in-process simulator, emulator statistics as
programmed, and the demo's results folder."""

import json
import math

import numpy as np
import pytest

from heraldry.gateware.layouts import RecordKind
from heraldry.host.config import Config
from heraldry.host.controller import Controller
from heraldry.host.emulator import EmulatorSettings, EmulatorWindow, emulator_registers
from heraldry.host.errors import ConfigError
from heraldry.host.records import records_equal
from heraldry.sim.emulator_model import jitter_pmf

CLK = 200e6
NS = 1e9 / CLK          # one cycle in ns


def chi2_sf(x, dof):
    """Survival function of the chi-square distribution (regularised upper gamma)."""
    a, y = dof / 2.0, x / 2.0
    term = total = 1.0 / a
    n = 1
    while term > total * 1e-15:
        term *= y / (a + n)
        total += term
        n += 1
    return 1.0 - math.exp(-y + a * math.log(y) - math.lgamma(a)) * total if y > 0 else 1.0


def test_chi2_sf_known_values():
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(5.991464547107979, 2) == pytest.approx(0.05, rel=1e-9)


def _run(url, config, settings, attempts):
    with Controller.open(url) as dev:
        dev.configure(config)
        dev.configure_emulator(settings)
        result = dev.run(attempts=attempts)
        return result, dev.device


def test_virtual_board_and_in_process_simulator_give_identical_records():
    config = Config(period_ns=20 * NS, windows_ns=[(4 * NS, 4 * NS), (10 * NS, 3 * NS)],
                    protocol="single-click", holdoff_ns=2 * NS, diagnostic=True)
    settings = EmulatorSettings(
        windows=[EmulatorWindow(4 * NS, 3 * NS, {1: 0.2, 2: 0.2, 3: 0.1}),
                 EmulatorWindow(10 * NS, 2 * NS, {1: 0.1, 3: 0.1})],
        dark_rate_hz=(0.01 * CLK, 0.02 * CLK), seed=0xDEC0DE)
    vboard, _ = _run("verilator://", config, settings, 300)
    insim, _ = _run(f"sim://?clk={int(CLK)}", config, settings, 300)
    assert vboard.attempts == insim.attempts == 300
    assert len(vboard.records) > 100                  # heralds and diagnostics
    assert records_equal(vboard.records, insim.records)
    assert vboard.counters.as_dict() == insim.counters.as_dict()
    assert vboard.link.clean and insim.link.clean


def test_success_probability_and_arrival_offsets_match_the_programmed_ones():
    offset, jitter = 5, 2
    config = Config(period_ns=12 * NS, windows_ns=[(offset * NS, (jitter + 1) * NS)],
                    protocol="single-click")
    settings = EmulatorSettings(
        windows=[EmulatorWindow(offset * NS, jitter * NS, {1: 0.025, 2: 0.025})],
        dark_rate_hz=(0.0, 0.0), seed=12345)
    result, device = _run("verilator://", config, settings, 220_000)
    regs = emulator_registers(settings, device)
    t1, t2 = regs["emulator.windows.0.thresholds.0"], regs["emulator.windows.0.thresholds.1"]
    p = t2 / 2 ** 32                      # patterns 1 and 2 herald, pattern 3 never drawn
    n = result.attempts
    assert result.heralds >= 10_000
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(result.heralds - n * p) < 4 * sigma, (result.heralds, n * p, sigma)
    assert abs(result.outcome_counts[1] - n * t1 / 2 ** 32) < 4 * math.sqrt(n * t1 / 2 ** 32)
    heralds = result.herald_records
    assert len(heralds) == result.heralds and result.link.clean
    first = heralds["first"][:, 0, :][heralds["cls"][:, 0, :] == 1] - offset
    observed = np.bincount(first, minlength=jitter + 1)
    assert len(observed) == jitter + 1
    expected = jitter_pmf(jitter) * len(first)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2_sf(chi2, jitter) > 1e-3, (observed, expected, chi2)


def test_dark_counts_match_the_programmed_rate_and_distribution():
    period, p_dark = 40, 0.01
    width = period - 3                  # e + L < period
    config = Config(period_ns=period * NS, windows_ns=[(0.0, width * NS)],
                    protocol="single-click", diagnostic=True)
    settings = EmulatorSettings(windows=[], dark_rate_hz=(p_dark * CLK, p_dark * CLK),
                                seed=99)
    result, _ = _run("verilator://", config, settings, 30_000)
    counters = result.counters
    cycles = counters.cycles
    q = p_dark * (1 - p_dark)           # a rising edge: a click after a cycle without one
    for c in range(2):
        clicks = counters.clicks_in_window[c] + counters.clicks_out_of_window[c]
        assert abs(clicks - cycles * q) < 4 * math.sqrt(cycles * q), (c, clicks, cycles * q)
    # Offset of the first click in the window: no rising edge before o, one at o.
    o = np.arange(width)
    k = np.arange(width + 1)
    first_at = np.array([p_dark * sum(p_dark ** kk * (1 - p_dark) ** (oo + 1 - kk)
                                      for kk in k[:oo + 1]) for oo in o])
    # Every attempt with a click leaves a record: HERALD (one click in all) or DIAGNOSTIC.
    records = result.records[result.records["kind"] != RecordKind.END.value]
    assert result.link.clean
    for c in range(2):
        cls, first = records["cls"][:, 0, c], records["first"][:, 0, c]
        observed = np.bincount(first[cls > 0], minlength=width)[:width]
        expected = first_at / first_at.sum() * observed.sum()
        bins = expected >= 5
        chi2 = float(((observed[bins] - expected[bins]) ** 2 / expected[bins]).sum())
        assert chi2_sf(chi2, int(bins.sum()) - 1) > 1e-3, (c, chi2)


def test_emulator_settings_are_checked_before_anything_is_written():
    with Controller.open("verilator://") as dev:
        dev.configure(Config(period_ns=12 * NS, windows_ns=[(5 * NS, 3 * NS)],
                             protocol="single-click"))
        before = dev.read("emulator.windows.0.offset")
        bad = [
            (EmulatorSettings(windows=[EmulatorWindow(5 * NS, 0, {1: 0.7, 2: 0.6})]),
             r"emulator.windows.0.patterns = \{1: 0.7, 2: 0.6\}: click-pattern probabilities "
             r"sum to 1.29+8: must be <= 1"),
            (EmulatorSettings(windows=[EmulatorWindow(11 * NS, 2 * NS, {1: 0.1})]),
             r"emulator.windows.0.offset_ns = 55.0: arrivals up to offset 13 cycles fall "
             r"after the attempt period of 12 cycles"),
            (EmulatorSettings(windows=[], dark_rate_hz=(1.0,)),
             r"emulator.dark_rate_hz = \(1.0,\): needs one rate per detector \(2\)"),
            (EmulatorSettings(windows=[], seed=-1), r"emulator.seed = -1"),
            (EmulatorSettings(windows=[EmulatorWindow(2 * NS, 0, {1: 0.1})]),
             r"emulator.windows.0.offset_ns = 10.0: 2 cycles: photons arrive at least 3 "
             r"cycles \(15 ns at 200 MHz\) after the attempt strobe"),
        ]
        for settings, message in bad:
            with pytest.raises(ConfigError, match=message):
                dev.configure_emulator(settings)
        assert dev.read("emulator.windows.0.offset") == before == 0


def test_a_new_period_is_checked_against_the_emulator_settings():
    config = Config(period_ns=20 * NS, windows_ns=[(5 * NS, 3 * NS)], protocol="single-click")
    with Controller.open("verilator://") as dev:
        dev.configure(config)
        dev.configure_emulator(EmulatorSettings(windows=[EmulatorWindow(11 * NS, 2 * NS,
                                                                        {1: 0.1})]))
        with pytest.raises(ConfigError, match=(
                r"period_ns = 60.0: too short for the link emulator's settings "
                r"\(emulator.windows.0.offset_ns = 55.0: arrivals up to offset 13 cycles "
                r"fall after the attempt period of 12 cycles\)")):
            dev.configure(Config(period_ns=12 * NS, windows_ns=[(5 * NS, 3 * NS)],
                                 protocol="single-click"))
        assert dev.read("config.period") == 20


def test_settings_written_between_runs_govern_the_next_run():
    # The emulator draws each attempt ahead of its strobe; settings written after a run (no
    # reseed) still govern the next run from its first attempt on.
    config = Config(period_ns=16 * NS, windows_ns=[(4 * NS, 8 * NS)], protocol="single-click")
    a_at_5 = EmulatorSettings(windows=[EmulatorWindow(5 * NS, 0, {1: 1.0})],
                              dark_rate_hz=(0.0, 0.0), seed=3)
    b_at_9_to_11 = EmulatorSettings(windows=[EmulatorWindow(9 * NS, 2 * NS, {2: 1.0})],
                                    dark_rate_hz=(0.0, 0.0), seed=3)
    with Controller.open("verilator://") as dev:
        dev.configure(config)
        dev.configure_emulator(a_at_5)
        first = dev.run(attempts=5)
        dev.configure_emulator(b_at_9_to_11, reseed=False)
        second = dev.run(attempts=5)
    assert first.heralds == second.heralds == 5
    assert first.outcome_counts[1] == second.outcome_counts[2] == 5
    assert list(first.herald_records["first"][:, 0, 0]) == [5] * 5
    assert set(second.herald_records["first"][:, 0, 1]) <= {9, 10, 11}


def test_demo_writes_its_results(tmp_path, capsys):
    from heraldry.host import cli
    out = tmp_path / "demo"
    code = cli.main(["demo", "--heralds", "40", "--max-seconds", "60", "--out", str(out)])
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0 and summary["agrees"], text
    assert summary["heralds"] >= 40 and "agrees within statistical error" in text
    for name in ("attempts_until_herald.png", "outcomes.png", "arrival_times.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name
    with np.load(out / "records.npz") as archive:
        records = archive["records"]
    assert np.count_nonzero(records["kind"] == RecordKind.HERALD.value) == summary["heralds"]
