"""Unit tests of the golden model's building blocks (the end-to-end semantics are pinned by
the cycle-exact benches in tests/gateware)."""

import pytest

from heraldry.gateware.layouts import (HERALD_LATENCY, RECORD_LATENCY, RUN_START_LATENCY,
                                       CoreParameters, Reason, RecordKind)
from heraldry.host.protocols import SingleClick
from heraldry.sim.golden import CoreConfig, HeraldCoreModel, Record, Trace


def test_trace_levels_and_edges():
    trace = Trace([5, 9, 12], initial=False)
    assert [trace.level(t) for t in range(14)] == [0] * 5 + [1] * 4 + [0] * 3 + [1] * 2
    assert trace.next_high(0) == 5 and trace.next_high(7) == 7 and trace.next_high(10) == 12
    assert trace.next_rise(0) == 5 and trace.next_rise(6) == 12 and trace.next_rise(13) is None
    with pytest.raises(ValueError):
        Trace([3, 3])


def test_config_and_record_pack_through_the_layouts():
    params = CoreParameters()
    config = CoreConfig(period=100, windows=((3, 4), (50, 7)), outputs=((0, 10),),
                        holdoff=9, stop_on_herald=True, max_attempts=5, timeout=1234,
                        batch=77, diagnostic=True)
    view = params.config_layout().from_bits(config.pack(params))
    assert (view.period, view.windows[1].start, view.windows[1].length) == (100, 50, 7)
    assert (view.outputs[0].stop, view.outputs[3].stop, view.holdoff) == (10, 0, 9)
    assert (view.max_attempts, view.timeout, view.batch) == (5, 1234, 77)
    assert view.stop_on_herald == 1 and view.diagnostic == 1
    record = Record(7, RecordKind.HERALD, Reason.HERALD, 2, 2 ** 47 + 3, 2 ** 40,
                    ((1, 3), (2, 65535), (0, 0), (1, 9)))
    bits = record.pack(params)
    view = params.record_layout().from_bits(bits)
    assert (view.seq, view.kind, view.outcome, view.attempt) == (7, RecordKind.HERALD, 2,
                                                                 2 ** 47 + 3)
    assert (view.cells[0][1].cls, view.cells[0][1].first, view.cells[1][1].first) == (2, 65535, 9)
    assert Record.unpack(params, bits) == record


def test_queue_holds_two_records_and_counts_drops():
    """Two records fit while the stream is blocked; the third is dropped and counted; a
    record produced in cycle c can leave from c + RECORD_LATENCY (2) on."""
    params = CoreParameters()
    table = SingleClick().compile(params)
    blocked_until = 200
    model = HeraldCoreModel(params, Trace([blocked_until], initial=False))
    config = CoreConfig(period=10, windows=((2, 2),), max_attempts=5)
    x0 = RUN_START_LATENCY + 1                                  # first attempt, start in 0
    d = 3 + HERALD_LATENCY                                      # decision offset e + L
    clicks = [(x0 + 10 * k + 2, 0) for k in range(5)]         # a herald in every attempt
    result = model.run(config, table, 0, clicks, Trace.constant(True))
    assert [t for t, _ in result.heralds] == [x0 + 10 * k + d for k in range(5)]
    assert result.counters["dropped_records"] == 4             # 5 heralds + END, 2 kept
    transferred = model.drain(blocked_until + 10)
    assert [(t, r.seq) for t, r in transferred] == [(200, 0), (201, 1)]
    model2 = HeraldCoreModel(params, Trace.constant(True))
    model2.run(config, table, 0, clicks[:1], Trace.constant(True))
    # Produced at x0 + d, offered two cycles later.
    assert RECORD_LATENCY == 2
    assert model2.drain(100)[0] == (x0 + d + 2, model2.produced[0])


def test_run_that_never_ends_is_rejected():
    params = CoreParameters()
    model = HeraldCoreModel(params)
    with pytest.raises(ValueError, match="run never ends"):
        model.run(CoreConfig(period=10, windows=((2, 2),)), [0] * params.table_depth, 0, [],
                  Trace.constant(False))


def test_room_is_counted_after_the_cycles_transfer():
    """A record produced while the queue is full finds room if the oldest leaves in that
    same cycle, and leaves itself RECORD_LATENCY cycles after its production."""
    params = CoreParameters()
    table = SingleClick().compile(params)
    config = CoreConfig(period=10, windows=((2, 2),), max_attempts=3)
    x0 = RUN_START_LATENCY + 1
    d = 3 + HERALD_LATENCY
    clicks = [(x0 + 10 * k + 2, 0) for k in range(3)]
    heralds = [x0 + 10 * k + d for k in range(3)]        # the third also ends the run
    # Blocked until the third decision: both earlier records wait, then one leaves in the
    # third decision's cycle, so its herald record is kept and the END record is dropped.
    model = HeraldCoreModel(params, Trace([heralds[2]], initial=False))
    result = model.run(config, table, 0, clicks, Trace.constant(True))
    assert result.counters["dropped_records"] == 1
    transferred = model.drain(heralds[2] + 10)
    assert [(t, r.seq) for t, r in transferred] == [
        (heralds[2], 0), (heralds[2] + 1, 1), (heralds[2] + RECORD_LATENCY, 2)]
