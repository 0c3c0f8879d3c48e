"""``heraldry selftest URL``: a board (or the virtual board) checked against what it was told.

Emulator mode (default): the link emulator replaces the detectors with programmed click
probabilities; a single-click run of many attempts must herald each outcome, and count
clicks in the window per detector, as often as those probabilities say, within
:data:`SIGMAS` binomial standard deviations, with no record lost on the link.

Loopback mode (``--loopback``, a board with ``trig[0]`` wired to ``clicks[0]``): trigger
output 0 pulses at a fixed time of every attempt and the detector input must see it come
back, in the window placed on that time, in every attempt, at core offset
``pulse + output_latency + frontend_latency``: the timing path from the core through the
output registers, the wire, the IO registers and the synchroniser, end to end.
"""

import math
from contextlib import nullcontext
from dataclasses import dataclass, field

__all__ = ["SelfTestError", "SelfTestReport", "emulator_selftest", "loopback_selftest",
           "SIGMAS"]

#: Allowed deviation of each count from its expectation, in binomial standard deviations.
SIGMAS = 5.0


class SelfTestError(RuntimeError):
    """A self-test check failed; the message names the check, the measured and the expected
    values."""


@dataclass
class SelfTestReport:
    """What a self-test measured: ``checks`` is a list of
    ``(name, measured, expected, tolerance, passed)``."""
    mode: str
    attempts: int
    checks: list = field(default_factory=list)

    @property
    def passed(self):
        return all(check[4] for check in self.checks)

    def summary(self):
        lines = [f"self-test ({self.mode}), {self.attempts} attempts:"]
        for name, measured, expected, tolerance, passed in self.checks:
            lines.append(f"  {'ok  ' if passed else 'FAIL'} {name}: {measured} "
                         f"(expected {expected:g} +- {tolerance:g})")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    def _binomial(self, name, measured, n, p):
        expected = n * p
        tolerance = SIGMAS * math.sqrt(n * p * (1 - p)) + 0.5
        self.checks.append((name, int(measured), expected, tolerance,
                            abs(measured - expected) <= tolerance))

    def _exact(self, name, measured, expected):
        self.checks.append((name, int(measured), expected, 0, measured == expected))


def _open(device):
    """A controller for ``device``: a URL, opened here and closed after the test, or an open
    :class:`~heraldry.host.Controller`, left open."""
    if isinstance(device, str):
        from ..host.controller import Controller
        return Controller.open(device)
    return nullcontext(device)


def emulator_selftest(url, *, attempts=20_000, probabilities=(0.1, 0.15, 0.05), seed=0x5E1F):
    """Run the emulator self-test on the device at ``url`` (or on an open controller);
    returns a :class:`SelfTestReport`.

    ``probabilities`` are those of the click patterns A only, B only and both, per attempt.
    Raises :class:`SelfTestError` (with the report's summary) if a check fails.
    """
    from ..host.config import Config
    from ..host.emulator import EmulatorSettings, EmulatorWindow, emulator_registers
    with _open(url) as dev:
        info = dev.identify()
        if not dev.regmap_device().emulator:
            # Refused before anything is written.
            raise SelfTestError(
                "this gateware has no link emulator (the iCEBreaker's UP5K build leaves it "
                "out, docs/boards.md): wire trig[0] to clicks[0] and run `heraldry selftest "
                "--loopback URL`, or run the emulator self-test on the virtual board "
                "(verilator://)")
        cycle_ns = 1e9 / info.clk_freq
        # A short attempt: an 8-cycle window from offset 4, photons at offset 5 +- 2.
        config = Config(period_ns=24 * cycle_ns, windows_ns=[(4 * cycle_ns, 8 * cycle_ns)],
                        protocol="single-click")
        settings = EmulatorSettings(
            windows=[EmulatorWindow(5 * cycle_ns, 2 * cycle_ns,
                                    {1: probabilities[0], 2: probabilities[1],
                                     3: probabilities[2]})],
            dark_rate_hz=(0.0, 0.0), seed=seed)
        dev.configure(config)
        dev.configure_emulator(settings)
        try:
            result = dev.run(attempts=attempts)
        finally:
            dev.disable_emulator()
        regs = emulator_registers(settings, dev.regmap_device())
    # The probabilities as the device has them: 32-bit cumulative thresholds.
    t = [0] + [regs[f"emulator.windows.0.thresholds.{k}"] for k in range(3)]
    p_a, p_b, p_ab = ((t[k + 1] - t[k]) / 2 ** 32 for k in range(3))
    report = SelfTestReport("emulator", attempts)
    n = result.attempts
    report._exact("attempts", n, attempts)
    report._binomial("heralds of outcome 1 (A only)", result.outcome_counts.get(1, 0), n, p_a)
    report._binomial("heralds of outcome 2 (B only)", result.outcome_counts.get(2, 0), n, p_b)
    clicks = result.counters.clicks_in_window
    report._binomial("clicks in window, detector A", clicks[0], n, p_a + p_ab)
    report._binomial("clicks in window, detector B", clicks[1], n, p_b + p_ab)
    report._exact("records lost on the link", 0 if result.link.clean else 1, 0)
    if not report.passed:
        raise SelfTestError(report.summary())
    return report


def loopback_selftest(url, *, attempts=1000, pulse_cycle=3):
    """Run the loopback self-test (``trig[0]`` wired to ``clicks[0]``) at ``url`` (or on an
    open controller)."""
    from ..host.config import Config
    with _open(url) as dev:
        info = dev.identify()
        if dev.regmap_device().emulator:
            dev.disable_emulator()          # the pins, not the emulator, feed the core
        cycle_ns = 1e9 / info.clk_freq
        # Trigger 0 high for 2 cycles from pulse_cycle; the window, in pin time, from the same
        # cycle: the host moves it by output + front-end latency, where the click arrives.
        config = Config(period_ns=32 * cycle_ns,
                        windows_ns=[(pulse_cycle * cycle_ns, 4 * cycle_ns)],
                        outputs_ns=[(pulse_cycle * cycle_ns, (pulse_cycle + 2) * cycle_ns)],
                        protocol="single-click")
        dev.configure(config)
        result = dev.run(attempts=attempts)
        delay = info.output_latency + info.frontend_latency
    report = SelfTestReport("loopback", attempts)
    report._exact("attempts", result.attempts, attempts)
    report._exact("heralds of outcome 1 (trig[0] came back on clicks[0])",
                  result.outcome_counts.get(1, 0), attempts)
    firsts = result.herald_records["first"][:, 0, 0] if result.heralds else []
    wrong = sum(1 for first in firsts if first != pulse_cycle + delay)
    report._exact(f"heralds whose click was not at core offset {pulse_cycle + delay}",
                  wrong, 0)
    if not report.passed:
        hint = ("" if result.heralds else
                "\nNo pulse came back: is trig[0] wired to clicks[0] (see docs/boards.md)?")
        raise SelfTestError(report.summary() + hint)
    return report
