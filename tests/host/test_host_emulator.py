"""Link-emulator settings in physical units -> registers; every misfit is a ConfigError naming
the field, the value and the limit, raised before anything is written (tests/sim checks that
the device then keeps its registers)."""

import pytest

from heraldry.gateware.emulator import MIN_ARRIVAL_OFFSET, min_period
from heraldry.gateware.regmap import SocParameters
from heraldry.host import ConfigError, DeviceInfo
from heraldry.host.emulator import (EmulatorSettings, EmulatorWindow, emulator_registers,
                                    settings_from_physics)
from heraldry.sim import physics


def device(**kwargs):
    return DeviceInfo.for_params(SocParameters(**kwargs))


DEV = device()          # 100 MHz: 10 ns per cycle


def test_settings_become_registers():
    settings = EmulatorSettings(windows=[EmulatorWindow(40, 20, {1: 0.25, 3: 0.5})],
                                dark_rate_hz=(1e6, 0.0), recal_ns=500, seed=0x123456789ABC)
    regs = emulator_registers(settings, DEV, period_cycles=100)
    assert regs["emulator.enable"] == 1
    assert (regs["emulator.seed_lo"], regs["emulator.seed_hi"]) == (0x56789ABC, 0x1234)
    assert (regs["emulator.windows.0.offset"], regs["emulator.windows.0.jitter"]) == (4, 2)
    assert [regs[f"emulator.windows.0.thresholds.{k}"] for k in range(3)] == \
        [1 << 30, 1 << 30, 3 << 30]
    # The window not given never clicks.
    assert [regs[f"emulator.windows.1.{name}"] for name in
            ("offset", "jitter", "thresholds.0", "thresholds.1", "thresholds.2")] == [0] * 5
    assert [regs["emulator.dark.0"], regs["emulator.dark.1"]] == [42949673, 0]
    assert regs["emulator.recal_cycles"] == 50


def test_arrival_before_the_minimum_offset_is_rejected():
    assert MIN_ARRIVAL_OFFSET == 3          # 30 ns at 100 MHz
    early = EmulatorSettings(windows=[EmulatorWindow(40, 0, {1: 0.1}),
                                      EmulatorWindow(24.9, 10, {2: 0.1})])
    with pytest.raises(ConfigError) as info:
        emulator_registers(early, DEV)
    assert (info.value.field, info.value.value) == ("emulator.windows.1.offset_ns", 24.9)
    assert str(info.value) == ("emulator.windows.1.offset_ns = 24.9: 2 cycles: photons arrive "
                               "at least 3 cycles (30 ns at 100 MHz) after the attempt strobe")
    # 25 ns rounds to 3 cycles; a window that never clicks may keep offset 0.
    fine = EmulatorSettings(windows=[EmulatorWindow(0.0), EmulatorWindow(25, 10, {2: 0.1})])
    assert emulator_registers(fine, DEV)["emulator.windows.1.offset"] == 3


def test_period_must_leave_time_to_draw_the_next_attempt():
    shortest = min_period(DEV.core_params)
    # Photons at the earliest arrival, so that they fall within the shortest period.
    settings = EmulatorSettings(windows=[EmulatorWindow(10 * MIN_ARRIVAL_OFFSET, 0, {1: 0.1})])
    with pytest.raises(ConfigError, match=rf"^period = {shortest - 1}: the emulator needs at "
                                          rf"least {shortest} cycles per attempt$"):
        emulator_registers(settings, DEV, period_cycles=shortest - 1)
    assert emulator_registers(settings, DEV, period_cycles=shortest)["emulator.enable"] == 1


def test_settings_from_physics_keep_photons_after_the_minimum_offset():
    link = physics.LinkParameters(alpha=(0.1, 0.1), eta=(0.01, 0.01), p_dark=(1e-4, 1e-4))
    settings = settings_from_physics(link, 100e6, [30.0], 40.0, seed=7)
    regs = emulator_registers(settings, DEV)
    assert regs["emulator.windows.0.offset"] == MIN_ARRIVAL_OFFSET
    assert regs["emulator.windows.0.jitter"] == 2           # half the window, 20 ns
    with pytest.raises(ConfigError, match=r"^window_starts_ns\[1\] = 20.0: 2 cycles: photons "
                                          r"arrive at least 3 cycles \(30 ns at 100 MHz\)"):
        settings_from_physics(link, 100e6, [200.0, 20.0], 40.0)
