"""The iCEBreaker's reduced build parameters, end to end: the host library learns them from
the identification block of the SoC built with them (in Amaranth's simulator), runs
single-click on it unchanged, with records and counters equal to the golden model's, refuses
what the board leaves out (Barrett-Kok's second window, the emulator self-test) before
writing anything, and passes the loopback self-test with trig[0] wired to clicks[0]."""

import dataclasses

import pytest

from heraldry.boards import get_board
from heraldry.boards.selftest import SelfTestError, emulator_selftest, loopback_selftest
from heraldry.gateware.layouts import Reason, RecordKind
from heraldry.host import Config, ConfigError, Controller
from heraldry.host.simlink import RandomClicks, SimTransport, click_edges
from heraldry.sim.golden import HeraldCoreModel, Record, Trace

ICEBREAKER = get_board("icebreaker")
CYCLE_NS = 1e9 / ICEBREAKER.clk_freq


def as_golden(params, records):
    nw, nc = params.n_windows, params.n_channels
    return [Record(int(r["seq"]), RecordKind(int(r["kind"])), Reason(int(r["reason"])),
                   int(r["outcome"]), int(r["attempt"]), int(r["start"]),
                   tuple((int(r["cls"][w, c]), int(r["first"][w, c]))
                         for w in range(nw) for c in range(nc)))
            for r in records]


@pytest.fixture(scope="module")
def device():
    source = RandomClicks(n_channels=2, rate=0.03, seed=11, ready=Trace([], True))
    with Controller(SimTransport(ICEBREAKER.soc_params, source)) as ctl:
        ctl.identify()
        yield ctl, source


def test_the_host_reads_the_board_parameters(device):
    ctl, _ = device
    info = ctl.identify()
    assert info.soc_params == ICEBREAKER.soc_params
    assert (info.n_channels, info.n_windows, info.n_outputs) == (2, 1, 2)
    assert (info.offset_width, info.count_width, info.seq_width) == (14, 41, 16)
    assert info.table_depth == 16 and info.emulator == 0 and info.clk_freq == 48_000_000
    # A 136-bit record: 17 bytes on the wire instead of the default build's 26.
    assert ICEBREAKER.soc_params.record_bytes == 17


def test_single_click_matches_the_golden_model(device):
    ctl, source = device
    protocol, windows_ns = "single-click", [(10 * CYCLE_NS, 8 * CYCLE_NS)]
    params = ctl.device.core_params
    model = HeraldCoreModel(params)
    model.seq = ctl.status().next_seq
    ctl.configure(Config(period_ns=40 * CYCLE_NS, windows_ns=windows_ns,
                         outputs_ns=[(0, 2 * CYCLE_NS), (3 * CYCLE_NS, 5 * CYCLE_NS)],
                         holdoff_ns=2 * CYCLE_NS, protocol=protocol, diagnostic=True))
    result = ctl.run(attempts=60)
    start = result.counters.start_cycle
    clicks = click_edges(source, start, start + result.counters.cycles + 2, 2)
    expected = model.run(dataclasses.replace(ctl.core_config, max_attempts=60), ctl.table,
                         start, clicks, source.ready)
    assert result.reason is Reason.MAX_ATTEMPTS == expected.reason
    assert result.counters.as_dict() == expected.counters
    assert as_golden(params, result.records) == expected.records
    assert len(result.records) > 5 and result.link.clean


def test_limits_of_the_narrower_registers(device):
    ctl, _ = device
    # 14-bit offsets: an attempt period of at most 16383 cycles, 341 us at 48 MHz.
    with pytest.raises(ConfigError, match=r"16384 cycles exceed the 14-bit register \(max "
                                          r"16383 cycles = 341312 ns at 48 MHz\)"):
        ctl.configure(Config(period_ns=16384 * CYCLE_NS, windows_ns=[(0, 100)]))
    with pytest.raises(ConfigError, match="outputs_ns = '3 outputs': the device has 2"):
        ctl.configure(Config(period_ns=1000, windows_ns=[(0, 100)],
                             outputs_ns=[(0, 10), (0, 10), (0, 10)]))


def test_what_the_board_leaves_out_is_refused_before_anything_is_written(device):
    ctl, _ = device
    ctl.configure(Config(period_ns=30 * CYCLE_NS, windows_ns=[(10 * CYCLE_NS, 8 * CYCLE_NS)],
                         protocol="single-click"))
    two_windows = [(10 * CYCLE_NS, 6 * CYCLE_NS), (20 * CYCLE_NS, 6 * CYCLE_NS)]
    with pytest.raises(ConfigError, match="windows_ns = '2 windows': the device has 1"):
        ctl.configure(Config(period_ns=50 * CYCLE_NS, windows_ns=two_windows,
                             protocol="barrett-kok"))
    with pytest.raises(SelfTestError, match=r"this gateware has no link emulator .*"
                                            r"heraldry selftest --loopback URL"):
        emulator_selftest(ctl, attempts=1000)     # would set a 24-cycle period first
    assert ctl.read("config.period") == 30


def test_loopback_selftest_with_trig0_wired_to_clicks0():
    # The pulse comes back output_latency + frontend_latency (2 + 3) cycles after the core
    # drives it; the host places the window on it from the board's identification block.
    params = ICEBREAKER.soc_params
    assert params.output_latency + params.frontend_latency == 5
    with Controller(SimTransport(params, wires=[(0, 0)])) as ctl:
        report = loopback_selftest(ctl, attempts=300)
    assert report.passed
    assert [check[:2] for check in report.checks] == [
        ("attempts", 300), ("heralds of outcome 1 (trig[0] came back on clicks[0])", 300),
        ("heralds whose click was not at core offset 8", 0)]


def test_two_outputs_wired_to_one_channel_are_one_pulse_there():
    # trig[0] and trig[1] both wired to clicks[0], both high for the same two cycles: one
    # click on detector 0 per attempt, none on detector 1.
    params = ICEBREAKER.soc_params
    with Controller(SimTransport(params, wires=[(0, 0), (1, 0)])) as ctl:
        ctl.configure(Config(period_ns=32 * CYCLE_NS, windows_ns=[(3 * CYCLE_NS, 4 * CYCLE_NS)],
                             outputs_ns=[(3 * CYCLE_NS, 5 * CYCLE_NS)] * 2,
                             protocol="single-click"))
        result = ctl.run(attempts=50)
    assert result.counters.clicks_in_window == [50, 0]
    assert result.counters.clicks_out_of_window == [0, 0]


def test_a_wire_the_device_cannot_have_is_refused():
    with pytest.raises(ValueError, match=r"wires: \(2, 0\) names trig\[2\] -> clicks\[0\]; the "
                                         r"device has 2 outputs and 2 channels"):
        SimTransport(ICEBREAKER.soc_params, wires=[(2, 0)])
    # Without a board's registers the pulse would have to come back in the cycle it leaves.
    bare = dataclasses.replace(ICEBREAKER.soc_params, output_latency=0, frontend_latency=0)
    with pytest.raises(ValueError, match="output_latency \\+ frontend_latency is 0; a wire "
                                         "needs at least 1 cycle"):
        SimTransport(bare, wires=[(0, 0)])
