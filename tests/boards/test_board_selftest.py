"""``heraldry selftest``: the emulator self-test on the virtual board, and its failure modes."""

import pytest

from heraldry.boards.selftest import (SIGMAS, SelfTestError, SelfTestReport, emulator_selftest,
                                      loopback_selftest)


def test_binomial_check_limits():
    report = SelfTestReport("emulator", 20_000)
    # n p = 2000, sigma = 42.43: the tolerance is 5 sigma + 0.5 = 212.6.
    report._binomial("inside", 2212, 20_000, 0.1)
    report._binomial("outside", 2213, 20_000, 0.1)
    assert [check[4] for check in report.checks] == [True, False]
    assert report.checks[0][3] == pytest.approx(SIGMAS * 42.42640687 + 0.5)
    assert not report.passed
    assert "FAIL outside: 2213 (expected 2000 +- 212.632)" in report.summary()


def test_emulator_selftest_on_the_virtual_board():
    report = emulator_selftest("verilator://", attempts=20_000)
    assert report.passed
    names = [check[0] for check in report.checks]
    assert names == ["attempts", "heralds of outcome 1 (A only)",
                     "heralds of outcome 2 (B only)", "clicks in window, detector A",
                     "clicks in window, detector B", "records lost on the link"]
    assert report.checks[0][1] == 20_000


def test_loopback_without_a_wire_says_so():
    # The virtual board has no wire from trig[0] to clicks[0]: nothing comes back.
    with pytest.raises(SelfTestError) as info:
        loopback_selftest("verilator://", attempts=200)
    message = str(info.value)
    assert "FAIL heralds of outcome 1 (trig[0] came back on clicks[0]): 0 (expected 200" \
        in message
    assert message.endswith("No pulse came back: is trig[0] wired to clicks[0] "
                            "(see docs/boards.md)?")


def test_selftest_cli(capsys):
    from heraldry.host.cli import main
    assert main(["selftest", "verilator://", "--attempts", "5000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("self-test (emulator), 5000 attempts:") and "PASSED" in out
    assert main(["selftest", "verilator://", "--loopback", "--attempts", "100"]) == 1
    assert "error: self-test failed" in capsys.readouterr().err
