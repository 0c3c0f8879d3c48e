"""sim:// round trip: configure and run the SoC in Amaranth's simulator with injected clicks,
through the framed protocol and the host library, and compare records and counters with
the golden model."""

import dataclasses

import numpy as np
import pytest

from heraldry.gateware.layouts import Reason, RecordKind
from heraldry.host import Config, Controller, SingleClick
from heraldry.host.simlink import RandomClicks, click_edges
from heraldry.sim.golden import HeraldCoreModel, Record, Trace


def as_golden(params, records):
    nw, nc = params.n_windows, params.n_channels
    return [Record(int(r["seq"]), RecordKind(int(r["kind"])), Reason(int(r["reason"])),
                   int(r["outcome"]), int(r["attempt"]), int(r["start"]),
                   tuple((int(r["cls"][w, c]), int(r["first"][w, c]))
                         for w in range(nw) for c in range(nc)))
            for r in records]


def model_run(model, ctl, result, source, core_config):
    params = ctl.device.core_params
    s = result.counters.start_cycle
    end = s + result.counters.cycles
    clicks = click_edges(source, s, end + 2, params.n_channels)
    return model.run(core_config, ctl.table, s, clicks, source.ready)


@pytest.fixture(scope="module")
def sim():
    # Ready drops for a while now and then; the edges also end batches.
    ready = Trace([3000 + 400 * k + (150 if k % 2 else 0) for k in range(60)], True)
    source = RandomClicks(n_channels=2, rate=0.03, seed=7, ready=ready)
    with Controller.open("sim://", click_source=source) as ctl:
        yield ctl, source


def test_identify(sim):
    ctl, _ = sim
    info = ctl.identify()
    assert (info.n_channels, info.n_windows, info.n_outputs) == (2, 2, 4)
    assert info.clk_freq == 100_000_000 and info.herald_latency == 3
    assert info.count_width == 48 and info.table_depth == 256
    assert info.frontend_latency == 0


def test_roundtrip_matches_golden_model(sim):
    ctl, source = sim
    params = ctl.device.core_params
    model = HeraldCoreModel(params)
    # The device's sequence numbers continue from earlier runs in this process; align.
    status = ctl.status()
    model.seq = ctl._next_seq or 0
    assert status.running is False

    # Run 1: attempts limit, two windows, diagnostics, a trigger output.
    config = Config(period_ns=300, windows_ns=[(20, 60), (120, 80)],
                    outputs_ns=[(0, 50)], holdoff_ns=30, protocol=SingleClick(window=1),
                    diagnostic=True)
    ctl.configure(config)
    result = ctl.run(attempts=25)
    expected = model_run(model, ctl, result,
                         source, dataclasses.replace(ctl.core_config, max_attempts=25))
    assert result.reason is Reason.MAX_ATTEMPTS == expected.reason
    assert result.counters.as_dict() == expected.counters
    assert as_golden(params, result.records) == expected.records
    assert result.attempts == 25
    assert result.link.clean
    assert len(result.records) >= 5      # the scenario exercises heralds and diagnostics

    # Run 2: device-timed duration, batches that wait for ready edges, Barrett-Kok,
    # stop on herald possible.
    config = Config(period_ns=250, windows_ns=[(10, 50), (100, 60)], holdoff_ns=20,
                    protocol="barrett-kok", batch=4, diagnostic=True)
    ctl.configure(config)
    result = ctl.run(duration=40e-6)
    expected = model_run(model, ctl, result, source,
                         dataclasses.replace(ctl.core_config, timeout=4000))
    assert result.reason is Reason.TIMEOUT == expected.reason
    assert result.counters.cycles == 4000
    assert result.counters.as_dict() == expected.counters
    assert as_golden(params, result.records) == expected.records
    assert result.link.clean
    # Overrides are restored: the configured registers are back.
    assert ctl.read("config.timeout") == 0 and ctl.read("config.max_attempts") == 0


def test_bad_config_writes_nothing(sim):
    ctl, _ = sim
    from heraldry.host import ConfigError
    ctl.configure(Config(period_ns=400, windows_ns=[(0, 100)]))
    frames_before = ctl.link_stats()["rx_frames"]
    with pytest.raises(ConfigError) as info:
        ctl.configure(Config(period_ns=200, windows_ns=[(0, 100), (120, 90)]))
    assert info.value.field == "windows_ns[1]"
    # Only the one request that read the statistics reached the device since.
    assert ctl.link_stats()["rx_frames"] == frames_before + 1
    assert ctl.read("config.period") == 40
    assert ctl.read("config.windows.1.length") == 0


def test_counters_snapshot_and_status(sim):
    ctl, _ = sim
    ctl.configure(Config(period_ns=400, windows_ns=[(0, 100)]))
    ctl.start()
    assert ctl.status().running
    first = ctl.counters()
    second = ctl.counters()
    assert 0 < first.cycles < second.cycles
    assert first.start_cycle == second.start_cycle < first.cycle < second.cycle
    # The latch takes the counters as they stand at the start of the snapshot cycle.
    assert second.cycle - second.start_cycle == second.cycles + 1
    ctl.stop()
    status = ctl.status()
    assert not status.running and status.reason is Reason.STOPPED
    end = ctl.read_events(0.5)
    assert end["kind"][-1] == RecordKind.END.value
    assert end["reason"][-1] == Reason.STOPPED.value


def test_run_until_heralds_matches_model_with_the_stop(sim):
    ctl, source = sim
    params = ctl.device.core_params
    model = HeraldCoreModel(params)
    model.seq = ctl.status().next_seq
    ctl.configure(Config(period_ns=200, windows_ns=[(10, 80)], protocol="single-click"))
    result = ctl.run(heralds=3)
    assert result.reason is Reason.STOPPED
    assert result.heralds >= 3
    # The host's stop landed in the run's last cycle: replay it into the model.
    s = result.counters.start_cycle
    stop = s + result.counters.cycles
    clicks = click_edges(source, s, stop + 2, params.n_channels)
    expected = model.run(ctl.core_config, ctl.table, s, clicks, source.ready, stop)
    assert result.counters.as_dict() == expected.counters
    assert as_golden(params, result.records) == expected.records


def test_events_generator(sim):
    ctl, _ = sim
    ctl.configure(Config(period_ns=200, windows_ns=[(10, 80)], max_attempts=30,
                         diagnostic=True))
    ctl.start()
    batches = []
    for batch in ctl.events(timeout=2.0):
        batches.append(batch)
        if batch["kind"][-1] == RecordKind.END.value:
            break
    records = np.concatenate(batches)
    assert records["kind"][-1] == RecordKind.END.value
    assert records["attempt"][-1] == 30
    assert np.all(np.diff(records["seq"].astype(np.int64)) == 1)


def test_writes_while_a_run_is_active_are_refused(sim):
    """While a run is active, configure() and write() of an idle-only register raise
    RunActiveError before anything reaches the device; raw writes to the configuration or
    the table are refused whole by the device (RunActiveError, link.rx_refused exact);
    the emulator's registers are written as ever; and the run is the golden model's with
    the configuration and table it started with."""
    from heraldry.host import RunActiveError
    ctl, source = sim
    params = ctl.device.core_params
    model = HeraldCoreModel(params)
    model.seq = ctl.status().next_seq
    config = Config(period_ns=200, windows_ns=[(10, 80)], protocol="single-click",
                    timeout_s=120e-6, diagnostic=True)
    ctl.configure(config)
    core_config, table = ctl.core_config, list(ctl.table)
    regmap = ctl.regmap
    refused_before = ctl.read("link.rx_refused")
    ctl.start()
    frames_before = ctl.link_stats()["rx_frames"]
    with pytest.raises(RunActiveError, match=r"^configure: a run is active"):
        ctl.configure(Config(period_ns=400, windows_ns=[(0, 100)]))
    with pytest.raises(RunActiveError, match=r"^write config.holdoff: a run is active"):
        ctl.write("config.holdoff", 3)
    # The status reads only: nothing was written.
    assert ctl.link_stats()["rx_frames"] == frames_before + 3
    entry = 1                                   # one click on channel 0: heralds outcome 1
    assert table[entry] == 1
    last_config = regmap.group("config.")[-1]
    emulator = regmap.group("emulator.")
    assert emulator[0].addr == last_config.addr + 1
    recal_before = ctl.read("emulator.recal_cycles")
    for addr, words_ in ((regmap["config.period"].addr, [50]),
                         (regmap["table"].addr + entry, [0]),
                         (last_config.addr, [0, 1])):        # config and emulator: whole
        with pytest.raises(RunActiveError, match="refused by the device"):
            ctl.write_words(addr, words_)
    ctl.write("emulator.recal_cycles", recal_before + 5)     # run-time writable
    assert ctl.status().running
    assert ctl.read("link.rx_refused") - refused_before == 3
    assert ctl.read("config.period") == core_config.period
    assert ctl.read(last_config.name) == 1 and ctl.read(emulator[0].name) == 0
    assert ctl.read("emulator.recal_cycles") == recal_before + 5
    ctl.write("emulator.recal_cycles", recal_before)
    batches = []
    while ctl.status().running:
        batches.append(ctl.read_events(0.01))
    batches.append(ctl.read_events(0.5))
    result_records = np.concatenate(batches)
    counters = ctl.counters()
    assert counters.cycles == core_config.timeout == 12000
    s = counters.start_cycle
    clicks = click_edges(source, s, s + counters.cycles + 2, params.n_channels)
    expected = model.run(core_config, table, s, clicks, source.ready)
    assert counters.as_dict() == expected.counters
    assert as_golden(params, result_records) == expected.records
    assert expected.counters["heralds"][0] > 0          # the table entry written stayed 1
    # After the run the same writes go through.
    ctl.configure(Config(period_ns=400, windows_ns=[(0, 100)]))
    assert ctl.read("config.period") == 40


def test_run_left_by_an_exception_is_stopped_and_its_overrides_restored(sim, monkeypatch):
    """The overrides of run(attempts=...) are written only while no run is active: an
    exception that leaves run() while the device still runs stops the run, then restores
    them."""
    ctl, _ = sim
    ctl.configure(Config(period_ns=200, windows_ns=[(10, 80)], protocol="single-click"))

    read_events, start = ctl.read_events, ctl.start
    started = []

    def interrupted(timeout=0.0):
        if started:
            raise RuntimeError("interrupted")
        return read_events(timeout)

    def start_and_note():
        start()
        started.append(True)

    monkeypatch.setattr(ctl, "read_events", interrupted)
    monkeypatch.setattr(ctl, "start", start_and_note)
    with pytest.raises(RuntimeError, match="interrupted"):
        ctl.run(attempts=1_000_000)
    monkeypatch.undo()
    status = ctl.status()
    assert started and not status.running and status.reason is Reason.STOPPED
    assert ctl.read("config.max_attempts") == 0
    ctl.read_events(0.5)
