"""Saving and loading records with their configuration and device description (.npz)."""

import numpy as np
import pytest

from heraldry.host import (Config, Controller, Custom, SingleClick, load_records,
                           save_records)
from heraldry.host.records import record_dtype, records_equal
from heraldry.host.results import wilson_interval
from heraldry.host.simlink import RandomClicks


def test_run_saved_and_loaded(tmp_path):
    with Controller.open("sim://", click_source=RandomClicks(2, 0.05, seed=11)) as ctl:
        config = Config(period_ns=300, windows_ns=[(0, 150)], protocol=SingleClick(),
                        diagnostic=True)
        ctl.configure(config)
        result = ctl.run(attempts=30)
    path = tmp_path / "run.npz"
    result.save(path)
    loaded = load_records(path)
    assert loaded.records.dtype == result.records.dtype
    assert records_equal(loaded.records, result.records)
    assert loaded.device == result.device
    assert loaded.config.compile(loaded.device) == config.compile(result.device)
    assert loaded.metadata["counters"] == result.counters.as_dict()
    assert loaded.metadata["link"] == result.link.as_dict()
    assert loaded.table == result.table


def test_custom_protocol_is_stored_as_its_table(tmp_path):
    from heraldry.gateware.regmap import SocParameters
    from heraldry.host import DeviceInfo
    device = DeviceInfo.for_params(SocParameters())
    config = Config(period_ns=300, windows_ns=[(0, 150)],
                    protocol=Custom(lambda c: 3 if c[0, 1] == 2 else 0))
    _, table = config.compile(device)
    records = np.zeros(3, dtype=record_dtype(device.core_params))
    records["seq"] = [5, 6, 7]
    save_records(tmp_path / "x.npz", records, config=config, device=device, table=table)
    loaded = load_records(tmp_path / "x.npz")
    assert list(loaded.records["seq"]) == [5, 6, 7]
    assert loaded.config.compile(device)[1] == table


def test_foreign_file_rejected(tmp_path):
    np.savez(tmp_path / "other.npz", records=np.zeros(2), metadata=np.array("{}"))
    with pytest.raises(ValueError, match="not a heraldry records file"):
        load_records(tmp_path / "other.npz")


def test_wilson_interval():
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == (pytest.approx(0.40383, abs=1e-4), pytest.approx(0.59617, abs=1e-4))
    assert all(np.isnan(wilson_interval(0, 0)))
