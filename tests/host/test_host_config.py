"""Config in physical units -> cycles and table; every misfit is a ConfigError naming the
field, the value and the limit, raised before anything is written."""

import pytest

from heraldry.gateware.regmap import ID_WORDS, RegisterMap, SocParameters
from heraldry.host import BarrettKok, Config, ConfigError, Custom, DeviceError, DeviceInfo
from heraldry.host.protocols import PSI_MINUS, PSI_PLUS


def device(**kwargs):
    return DeviceInfo.for_params(SocParameters(**kwargs))


DEV = device()          # 100 MHz: 10 ns per cycle


def test_identification_block_round_trip():
    assert DEV.soc_params == SocParameters()
    assert DEV.regmap.hash == DEV.map_hash


def test_identification_rejects_foreign_device():
    words = [0] * ID_WORDS
    with pytest.raises(DeviceError, match="magic"):
        DeviceInfo.from_words(words)
    regmap = RegisterMap(SocParameters())
    words = [r.reset for r in regmap.group("id.")]
    words[regmap["id.map_hash"].addr] ^= 1
    with pytest.raises(DeviceError, match="map_hash"):
        DeviceInfo.from_words(words)


def test_conversion_and_rounding():
    config = Config(period_ns=1000, windows_ns=[(104.9, 200), (505, 300)],
                    outputs_ns=[(0, 50), (985, 1000)], holdoff_ns=14.99, max_attempts=7,
                    timeout_s=2e-3, batch=3, stop_on_herald=True, diagnostic=True,
                    protocol="barrett-kok")
    core, table = config.compile(DEV)
    assert core.period == 100
    assert core.windows == ((10, 20), (51, 30))          # 104.9 -> 10, 505 -> 51 (half up)
    assert core.outputs == ((0, 5), (99, 100))                # 98.5 -> 99
    assert core.holdoff == 1
    assert (core.max_attempts, core.timeout, core.batch) == (7, 200_000, 3)
    assert core.stop_on_herald and core.diagnostic
    assert table == BarrettKok().compile(DEV.core_params)
    # Pattern: window 0 channel 0 once, window 1 channel 1 once -> different detectors.
    assert table[(1 << 0) | (1 << 6)] == PSI_MINUS
    assert table[(1 << 0) | (1 << 4)] == PSI_PLUS


def check(config, field, limit_words, dev=DEV):
    with pytest.raises(ConfigError) as info:
        config.compile(dev)
    assert info.value.field == field
    for word in limit_words:
        assert word in str(info.value.limit)
    return info.value


def test_window_outside_period():
    error = check(Config(period_ns=500, windows_ns=[(400, 200)]), "windows_ns[0]",
                  ["outside the period", "50 cycles"])
    assert error.value == (400, 200)


def test_decision_must_precede_next_attempt():
    # Last window ends at cycle 47 (48 - 1); 47 + L(3) = 50 is not < period 50.
    error = check(Config(period_ns=500, windows_ns=[(380, 100)]), "windows_ns",
                  ["herald latency of 3", "cycle 50"])
    assert error.value == [(380, 100)]
    # One cycle earlier fits.
    Config(period_ns=500, windows_ns=[(370, 100)]).compile(DEV)


def test_register_ranges():
    check(Config(period_ns=700_000), "period_ns", ["16-bit", "65535"])
    check(Config(period_ns=0), "period_ns", ["at least 1"])
    check(Config(period_ns=100, holdoff_ns=1e6), "holdoff_ns", ["16-bit"])
    check(Config(period_ns=100, max_attempts=1 << 32), "max_attempts", ["32-bit"])
    check(Config(period_ns=100, max_attempts=-1), "max_attempts", ["0..4294967295"])
    check(Config(period_ns=100, batch=1.5), "batch", ["integer"])
    check(Config(period_ns=100, timeout_s=50.0), "timeout_s", ["32-bit"])
    check(Config(period_ns=float("nan")), "period_ns", ["finite"])
    check(Config(period_ns=100, windows_ns=[(10, 20), (30, 10), (50, 10)]), "windows_ns",
          ["the device has 2"])
    check(Config(period_ns=100, windows_ns=[(10, 0)]), "windows_ns[0].length",
          ["at least 1"])
    check(Config(period_ns=100, outputs_ns=[(50, 20)]), "outputs_ns[0]", ["before stop"])
    check(Config(period_ns=100, outputs_ns=[(50, 120)]), "outputs_ns[0]", ["<= the period"])
    check(Config(period_ns=100, stop_on_herald=1), "stop_on_herald", ["True or False"])


def test_protocols():
    check(Config(period_ns=1000, windows_ns=[(0, 100)], protocol="time-bin"), "protocol",
          ["unknown", "barrett-kok", "single-click"])
    check(Config(period_ns=1000, windows_ns=[(0, 100)], protocol="barrett-kok"), "protocol",
          ["uses 2 detection window(s)", "enables 1"])
    error = check(Config(period_ns=1000, windows_ns=[(0, 100)], protocol=[0] * 300),
                  "protocol", ["256 entries"])
    assert error.value == "table of 300 entries"
    check(Config(period_ns=1000, windows_ns=[(0, 100)], protocol=[0, 9]), "protocol[1]",
          ["0..3"])
    check(Config(period_ns=1000, windows_ns=[(0, 100)], protocol=3.5), "protocol", ["must be"])
    # A user mapping: channel 1 clicking once in window 0 alone -> outcome 3.
    config = Config(period_ns=1000, windows_ns=[(0, 100)],
                    protocol={(0, 1, 0, 0): 3})
    _, table = config.compile(DEV)
    assert table[1 << 2] == 3 and sum(table) == 3
    # An explicit short table is padded with "no herald".
    _, table = Config(period_ns=1000, windows_ns=[(0, 100)], protocol=[0, 1, 2]).compile(DEV)
    assert table[:3] == [0, 1, 2] and len(table) == 256 and not any(table[3:])
    custom = Custom(lambda classes: 1 if classes.sum() == 2 else 0)
    _, table = Config(period_ns=1000, windows_ns=[(0, 100)], protocol=custom).compile(DEV)
    assert table[0b0101] == 1 and table[0b0001] == 0


def test_clock_is_the_devices():
    slow = device(clk_freq=12_000_000)       # 83.3 ns per cycle
    core, _ = Config(period_ns=10_000, windows_ns=[(1000, 2000)]).compile(slow)
    assert core.period == 120 and core.windows == ((12, 24),)


def test_windows_refer_to_the_pins():
    board = device(frontend_latency=3, output_latency=1)
    core, _ = Config(period_ns=500, windows_ns=[(100, 50)],
                     outputs_ns=[(0, 20)]).compile(board)
    assert core.windows == ((14, 5),)        # 10 cycles at the pins + 1 out + 3 in
    assert core.outputs == ((0, 2),)         # every output has the same latency
    assert board.summary().count("latency") == 3
    # The move counts against the period: 45 + 4 + 5 = 54 > 50.
    error = check(Config(period_ns=500, windows_ns=[(450, 50)]), "windows_ns[0]",
                  ["moved 4 cycles later"], dev=board)
    assert error.value == (450, 50)
    # And against the decision: cycles 46, 47 in the core; 47 + L(3) = 50 >= 50.
    check(Config(period_ns=500, windows_ns=[(420, 20)]), "windows_ns",
          ["moved 4 cycles later", "herald latency of 3"], dev=board)
    # Cycles 45, 46: 46 + 3 < 50.
    Config(period_ns=500, windows_ns=[(410, 20)]).compile(board)


def test_config_dict_round_trip():
    config = Config(period_ns=1000, windows_ns=[(0, 100), (200, 100)], protocol=BarrettKok(),
                    max_attempts=5)
    again = Config.from_dict(config.to_dict())
    assert again.compile(DEV) == config.compile(DEV)
    custom = Config(period_ns=1000, windows_ns=[(0, 100)], protocol=Custom(lambda c: 0))
    _, table = custom.compile(DEV)
    assert Config.from_dict(custom.to_dict(), table).compile(DEV)[1] == table
