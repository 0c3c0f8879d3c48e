"""HeraldCore: the attempt-retry loop, windowed click classification and the decision table.

The timing contract is stated in the README and, executably, in :mod:`heraldry.sim.golden`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (CLASS_MANY, HERALD_LATENCY, START_LATENCY, STOP_LATENCY, CoreParameters,
                      Reason, RecordKind)

__all__ = ["HeraldCore"]


class _Sched(enum.Enum, shape=2):
    WAIT = 0      # waiting for ready (level)
    ATTEMPT = 1   # inside an attempt's period
    RECAL = 2     # batch over: waiting for a rising edge of ready


def _last_window_offset(m, config, params, name):
    """``e``: the largest start + length - 1 over enabled windows (0 if none)."""
    e = Const(0, params.offset_width + 1)
    for w in range(params.n_windows):
        window = config.windows[w]
        end = Signal(params.offset_width + 1, name=f"{name}_end{w}")
        m.d.comb += end.eq(Mux(window.length != 0, window.start + window.length - 1, 0))
        e = Mux(end > e, end, e)
    result = Signal(params.offset_width + 1, name=name)
    m.d.comb += result.eq(e)
    return result


class HeraldCore(wiring.Component):
    """Attempt-retry loop with windowed click classification and a table-driven herald.

    All offsets are clock cycles since the attempt started (offset 0: ``attempt`` high).
    The herald for an attempt comes at offset ``e + latency``, where ``e`` is the last
    in-window offset over the enabled windows.

    Parameters
    ----------
    n_channels : int
        Detector inputs.
    n_windows : int
        Detection windows per attempt.
    n_outputs : int
        Trigger outputs.
    params : CoreParameters, optional
        Full parameter set; overrides the three counts above.

    Attributes
    ----------
    config : In(CoreParameters.config_layout())
        Sampled in the cycle a run starts.
    table : In(CoreParameters.table_port_layout())
        Decision-table write port (``addr``, ``data``, ``en``). Writes are staged per entry
        and take effect at the next run start (a write in the start cycle included).
    start, stop : In(1)
        Strobes. ``start`` is accepted while ``running`` is low; ``stop`` while it is high.
    ready : In(1)
        Attempts start only while ready is high; after a batch, at its next rising edge.
    clicks : In(n_channels)
        Detector inputs, synchronous; a click is a rising edge.
    attempt, gate, trig, herald, outcome : Out
        Per-attempt strobes and levels.
    running, recal : Out(1)
        Levels.
    done, reason : Out
        End-of-run strobe with its :class:`Reason`.
    events : Out(stream.Signature(record_layout))
        Event records; never stalls the core, drops are counted.
    counters : Out(counters_layout)
        Cleared when a run starts.
    """

    #: Cycles from the last in-window offset ``e`` to ``herald`` (see README).
    latency = HERALD_LATENCY
    start_latency = START_LATENCY
    stop_latency = STOP_LATENCY

    def __init__(self, n_channels=2, n_windows=2, n_outputs=4, *, params=None):
        if params is None:
            try:
                params = CoreParameters(n_channels=n_channels, n_windows=n_windows,
                                        n_outputs=n_outputs)
            except ValueError:
                self._MustUse__silence = True     # rejected, so never elaborated: no warning
                raise
        self.params = params
        p = params
        super().__init__({
            "config": In(p.config_layout()),
            "table": In(p.table_port_layout()),
            "start": In(1),
            "stop": In(1),
            "ready": In(1),
            "clicks": In(p.n_channels),
            "attempt": Out(1),
            "gate": Out(p.n_windows),
            "trig": Out(p.n_outputs),
            "herald": Out(1),
            "outcome": Out(p.outcome_width),
            "running": Out(1),
            "recal": Out(1),
            "done": Out(1),
            "reason": Out(Reason),
            "events": Out(stream.Signature(p.record_layout())),
            "counters": Out(p.counters_layout()),
        })

    def elaborate(self, platform):
        p = self.params
        nc, nw, ncell = p.n_channels, p.n_windows, p.n_cells
        L = HERALD_LATENCY
        m = Module()

        # -- run control ----------------------------------------------------------------------
        cfg = Signal(p.config_layout())
        running = Signal()
        start_accept = Signal()
        stop_now = Signal()
        m.d.comb += [
            start_accept.eq(self.start & ~running),
            stop_now.eq(self.stop & running),
            self.running.eq(running),
        ]
        e_in = _last_window_offset(m, self.config, p, "e_in")
        e_reg = Signal.like(e_in)
        # Latest elapsed cycle (since start) in which an attempt may be launched so that
        # its decision still falls before the deadline: x + e + L < s + timeout.
        latest_in = Signal(signed(p.limit_width + 3))
        latest_reg = Signal.like(latest_in)
        m.d.comb += latest_in.eq(self.config.timeout - e_in - (L + 2))
        with m.If(start_accept):
            m.d.sync += [cfg.eq(self.config), e_reg.eq(e_in), latest_reg.eq(latest_in),
                         running.eq(1)]
        e = Signal.like(e_in)
        latest = Signal.like(latest_in)
        timeout = Signal.like(cfg.timeout)
        m.d.comb += [
            e.eq(Mux(start_accept, e_in, e_reg)),
            latest.eq(Mux(start_accept, latest_in, latest_reg)),
            timeout.eq(Mux(start_accept, self.config.timeout, cfg.timeout)),
        ]

        counters = self.counters
        elapsed = Signal(p.count_width + 1)        # cycles since the start cycle
        m.d.comb += elapsed.eq(Mux(start_accept, 0, counters.cycles + 1))

        # -- scheduler ------------------------------------------------------------------------
        sched = Signal(_Sched)
        offset = Signal(p.offset_width)
        in_attempt = Signal()
        m.d.comb += in_attempt.eq(running & (sched == _Sched.ATTEMPT))
        batch_count = Signal(p.limit_width)
        attempt_start = Signal(p.count_width)      # x - s of the current attempt

        ready_prev = Signal()
        m.d.sync += ready_prev.eq(self.ready)
        ready_rise = self.ready & ~ready_prev

        slot_end = Signal()
        batch_hit = Signal()
        m.d.comb += [
            slot_end.eq(in_attempt & (offset == cfg.period - 1)),
            batch_hit.eq((cfg.batch != 0) & (batch_count == cfg.batch)),
        ]
        eligible_level = Signal()
        eligible_rise = Signal()
        m.d.comb += [
            eligible_level.eq(start_accept
                              | (running & (sched == _Sched.WAIT))
                              | (slot_end & ~batch_hit)),
            eligible_rise.eq(running & (sched == _Sched.RECAL)),
        ]
        attempts_ok = Signal()
        deadline_ok = Signal()
        m.d.comb += [
            attempts_ok.eq(start_accept | (cfg.max_attempts == 0)
                           | (counters.attempts < cfg.max_attempts)),
            deadline_ok.eq((timeout == 0) | (elapsed <= latest)),
        ]

        # -- clicks ---------------------------------------------------------------------------
        clicks_prev = Signal(nc)
        m.d.sync += clicks_prev.eq(self.clicks)
        edges = Signal(nc)
        m.d.comb += edges.eq(self.clicks & ~clicks_prev)

        gate = Signal(nw)
        for w in range(nw):
            window = cfg.windows[w]
            m.d.comb += gate[w].eq(in_attempt & (offset >= window.start)
                                   & (offset < window.start + window.length))
        m.d.comb += self.gate.eq(gate)
        for k in range(p.n_outputs):
            output = cfg.outputs[k]
            m.d.comb += self.trig[k].eq(in_attempt & (offset >= output.start)
                                        & (offset < output.stop))
        m.d.comb += self.attempt.eq(in_attempt & (offset == 0))

        accept = Signal(nc)
        afterpulse = Signal(nc)
        for c in range(nc):
            hold = Signal(p.offset_width, name=f"hold{c}")
            m.d.comb += [
                afterpulse[c].eq(edges[c] & running & (hold != 0)),
                accept[c].eq(edges[c] & running & (hold == 0)),
            ]
            with m.If(start_accept):
                m.d.sync += hold.eq(0)
            with m.Elif(accept[c]):
                m.d.sync += hold.eq(cfg.holdoff)
            with m.Elif(hold != 0):
                m.d.sync += hold.eq(hold - 1)

        # Per-cell click class and first offset of the current attempt.
        cls = [Signal(2, name=f"cls{k}") for k in range(ncell)]
        first = [Signal(p.offset_width, name=f"first{k}") for k in range(ncell)]
        second_click = Signal(ncell)
        pattern = Signal(p.table_addr_width)
        m.d.comb += pattern.eq(Cat(*cls))
        go = Signal()
        for w in range(nw):
            for c in range(nc):
                k = w * nc + c
                hit = accept[c] & gate[w]
                m.d.comb += second_click[k].eq(hit & (cls[k] == 1))
                with m.If(go):
                    m.d.sync += [cls[k].eq(0), first[k].eq(0)]
                with m.Elif(hit):
                    with m.If(cls[k] == 0):
                        m.d.sync += first[k].eq(offset)
                    with m.If(cls[k] != CLASS_MANY):
                        m.d.sync += cls[k].eq(cls[k] + 1)

        # -- decision table: two banks, the bank in use chosen per entry ---------------------
        depth = p.table_depth
        bank_mems = [Memory(shape=p.outcome_width, depth=depth, init=[]) for _ in range(2)]
        m.submodules.table_bank0, m.submodules.table_bank1 = bank_mems
        write_ports = [mem.write_port() for mem in bank_mems]
        read_ports = [mem.read_port() for mem in bank_mems]
        fresh_now = Signal(depth)      # bank holding each entry's newest write
        fresh_run = Signal(depth)      # bank each entry is read from during this run
        fresh_next = Signal(depth)
        write_bank = Signal()
        m.d.comb += [
            write_bank.eq(~fresh_run.bit_select(self.table.addr, 1)),
            fresh_next.eq(fresh_now),
        ]
        with m.If(self.table.en):
            m.d.comb += fresh_next.bit_select(self.table.addr, 1).eq(write_bank)
        with m.If(self.table.en):
            m.d.sync += fresh_now.eq(fresh_next)
        with m.If(start_accept):
            m.d.sync += fresh_run.eq(fresh_next)
        for bank, port in enumerate(write_ports):
            m.d.comb += [
                port.addr.eq(self.table.addr),
                port.data.eq(self.table.data),
                port.en.eq(self.table.en & (write_bank == bank)),
            ]
        for port in read_ports:
            m.d.comb += port.addr.eq(pattern)
        read_bank = Signal()
        with m.If(in_attempt & (offset == e + 1)):    # the table lookup cycle
            m.d.sync += read_bank.eq(fresh_run.bit_select(pattern, 1))
        table_out = Signal(p.outcome_width)
        m.d.comb += table_out.eq(Mux(read_bank, read_ports[1].data, read_ports[0].data))

        decide = Signal()
        herald = Signal()
        diag = Signal()
        m.d.comb += [
            decide.eq(in_attempt & (offset == e + L) & ~stop_now),
            herald.eq(decide & (table_out != 0)),
            diag.eq(decide & (table_out == 0) & cfg.diagnostic & (pattern != 0)),
            self.herald.eq(herald),
            self.outcome.eq(Mux(herald, table_out, 0)),
        ]

        # -- end of run -----------------------------------------------------------------------
        end_stop = stop_now
        end_herald = herald & cfg.stop_on_herald
        end_max = decide & (cfg.max_attempts != 0) & (counters.attempts == cfg.max_attempts)
        end_timeout = running & (cfg.timeout != 0) & (elapsed == cfg.timeout)
        done = Signal()
        m.d.comb += done.eq(end_stop | end_herald | end_max | end_timeout)
        with m.If(end_stop):
            m.d.comb += self.reason.eq(Reason.STOPPED)
        with m.Elif(end_herald):
            m.d.comb += self.reason.eq(Reason.HERALD)
        with m.Elif(end_max):
            m.d.comb += self.reason.eq(Reason.MAX_ATTEMPTS)
        with m.Else():
            m.d.comb += self.reason.eq(Reason.TIMEOUT)
        m.d.comb += self.done.eq(done)

        ready_ok = Mux(eligible_rise, ready_rise, self.ready)
        m.d.comb += go.eq((eligible_level | eligible_rise) & ready_ok & deadline_ok
                          & attempts_ok & ~done)

        with m.If(done):
            m.d.sync += [running.eq(0), sched.eq(_Sched.WAIT)]
        with m.Elif(go):
            m.d.sync += [sched.eq(_Sched.ATTEMPT), offset.eq(0),
                         attempt_start.eq(elapsed + 1)]
        with m.Elif(slot_end):
            m.d.sync += sched.eq(Mux(batch_hit, _Sched.RECAL, _Sched.WAIT))
        with m.Elif(in_attempt):
            m.d.sync += offset.eq(offset + 1)
        with m.If(start_accept & ~go):
            m.d.sync += sched.eq(_Sched.WAIT)

        with m.If(start_accept):
            m.d.sync += batch_count.eq(go)
        with m.Elif(go):
            m.d.sync += batch_count.eq(Mux(eligible_rise, 1, batch_count + 1))
        m.d.comb += self.recal.eq(running & (sched == _Sched.RECAL))

        # -- counters -------------------------------------------------------------------------
        # Updated only when they change: cheaper in simulation, same behaviour.
        def count(counter, increment):
            with m.If(start_accept):
                m.d.sync += counter.eq(increment)
            with m.Elif(increment != 0):
                m.d.sync += counter.eq(counter + increment)

        count(counters.attempts, go)
        count(counters.cycles, running)
        for o in range(p.n_outcomes):
            count(counters.heralds[o], herald & (table_out == o + 1))
        any_gate = gate.any()
        for c in range(nc):
            count(counters.clicks_in_window[c], accept[c] & any_gate)
            count(counters.clicks_out_of_window[c], accept[c] & ~any_gate)
            count(counters.afterpulses[c], afterpulse[c])
            for w in range(nw):
                count(counters.multi_clicks[w][c], second_click[w * nc + c])

        # -- event records: produced at the decision and at the end, queued two deep ---------
        seq = Signal(p.seq_width)
        push_attempt = Signal()
        n_push = Signal(2)
        m.d.comb += [
            push_attempt.eq(herald | diag),
            n_push.eq(push_attempt + done),
        ]
        with m.If(n_push != 0):
            m.d.sync += seq.eq(seq + n_push)

        def load_attempt(slot):
            m.d.sync += [
                slot.seq.eq(seq),
                slot.kind.eq(Mux(herald, RecordKind.HERALD, RecordKind.DIAGNOSTIC)),
                slot.reason.eq(Reason.HERALD),
                slot.outcome.eq(self.outcome),
                slot.attempt.eq(counters.attempts - 1),
                slot.start.eq(attempt_start),
            ]
            for w in range(nw):
                for c in range(nc):
                    m.d.sync += [slot.cells[w][c].cls.eq(cls[w * nc + c]),
                                 slot.cells[w][c].first.eq(first[w * nc + c])]

        def load_end(slot):
            m.d.sync += [
                slot.seq.eq(seq + push_attempt),
                slot.kind.eq(RecordKind.END),
                slot.reason.eq(self.reason),
                slot.outcome.eq(0),
                slot.attempt.eq(counters.attempts),
                slot.start.eq(elapsed),
                slot.cells.as_value().eq(0),
            ]

        def load_first_push(slot):
            with m.If(push_attempt):
                load_attempt(slot)
            with m.Elif(done):
                load_end(slot)

        slots = [Signal(p.record_layout(), name=f"queue{i}") for i in range(2)]
        level = Signal(range(3))
        pop = Signal()
        m.d.comb += [
            self.events.valid.eq(level != 0),
            self.events.payload.eq(slots[0]),
            pop.eq(self.events.valid & self.events.ready),
        ]
        remaining = Signal(range(3))
        m.d.comb += remaining.eq(level - pop)
        accepted = Signal(2)
        with m.Switch(remaining):
            with m.Case(0):
                m.d.comb += accepted.eq(n_push)
                load_first_push(slots[0])
                with m.If(push_attempt & done):
                    load_end(slots[1])
            with m.Case(1):
                m.d.comb += accepted.eq(Mux(n_push != 0, 1, 0))
                with m.If(pop):
                    m.d.sync += slots[0].eq(slots[1])
                load_first_push(slots[1])
            with m.Case(2):
                m.d.comb += accepted.eq(0)
        with m.If(pop | (n_push != 0)):
            m.d.sync += level.eq(remaining + accepted)
        count(counters.dropped_records, n_push - accepted)

        return m
