"""HeraldCore: the attempt-retry loop, windowed click classification and the decision table.

The timing contract is stated in the README and, executably, in :mod:`heraldry.sim.golden`.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (CLASS_MANY, HERALD_LATENCY, RUN_START_LATENCY, START_LATENCY,
                      STOP_LATENCY, CoreParameters, Reason, RecordKind)

__all__ = ["HeraldCore"]


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
    #: Cycles from the accepted start to the first cycle in which ``ready`` is sampled.
    run_start_latency = RUN_START_LATENCY

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
        # Timing structure: every decision (go, done, herald) is a shallow function of
        # registered flags. Per-run constants are derived from the latched configuration
        # during the RUN_START_LATENCY cycles after the start; offset thresholds are compared
        # one cycle early into flags; limits are down-counters whose zero/sign is registered;
        # the table's read data and bank bit are registered; counters add registered strobes.
        # The table's write bookkeeping and bank choice are pipelined behind the port.
        p = self.params
        nc, nw, ncell = p.n_channels, p.n_windows, p.n_cells
        ow, lw, cw = p.offset_width, p.limit_width, p.count_width
        L, K = HERALD_LATENCY, RUN_START_LATENCY
        m = Module()
        config = self.config

        # -- run control ----------------------------------------------------------------------
        running = Signal()
        start_accept = Signal()
        stop_now = Signal()
        m.d.comb += [
            start_accept.eq(self.start & ~running),
            stop_now.eq(self.stop & running),
            self.running.eq(running),
        ]
        # stage[i] is high in cycle s + 1 + i; a new start cancels the pulses of an older one.
        stage = [Signal(name=f"start_stage{i}") for i in range(K - 1)]
        m.d.sync += stage[0].eq(start_accept)
        for i in range(1, K - 1):
            m.d.sync += stage[i].eq(stage[i - 1] & ~start_accept)
        arm = stage[K - 2]                  # cycle s + K - 1: the scheduler is eligible next

        go = Signal()                       # an attempt starts in the next cycle
        attempt_now = Signal()              # go, one cycle later: the attempt strobe
        m.d.sync += attempt_now.eq(go)
        offset = Signal(ow)
        m.d.sync += offset.eq(Mux(go, 0, offset + 1))   # runs on outside attempts; unused there

        def threshold(name, value):
            """Registers for comparing the *next* offset with ``value`` (latched at start):
            the flag is registered, so the offset comparison happens one cycle early."""
            minus_one = Signal(signed(ow + 2), name=f"{name}_m1")
            zero = Signal(name=f"{name}_zero")
            with m.If(start_accept):
                m.d.sync += [minus_one.eq(value - 1), zero.eq(value == 0)]
            return minus_one, zero

        def next_is(minus_one, zero):
            return Mux(go, zero, offset == minus_one)

        # -- per-run constants ------------------------------------------------------------------
        holdoff = Signal(ow)
        holdoff_zero = Signal()
        stop_on_herald = Signal()
        diagnostic = Signal()
        batch = Signal(lw)
        has_batch = Signal()
        with m.If(start_accept):
            m.d.sync += [holdoff.eq(config.holdoff), holdoff_zero.eq(config.holdoff == 0),
                         stop_on_herald.eq(config.stop_on_herald),
                         diagnostic.eq(config.diagnostic), batch.eq(config.batch),
                         has_batch.eq(config.batch != 0)]

        # e = max over enabled windows of start + length - 1: a registered max tree that
        # settles while the scheduler is not yet eligible.
        level = []
        for w in range(nw):
            window = config.windows[w]
            last = Signal(signed(ow + 2), name=f"window{w}_last")
            with m.If(start_accept):
                m.d.sync += last.eq(Mux(window.length != 0, window.start + window.length - 1, 0))
            level.append(last)
        depth = 0
        while len(level) > 1:
            merged = []
            for i in range(0, len(level), 2):
                pair = level[i:i + 2]
                node = Signal(signed(ow + 2), name=f"e_tree{depth}_{i // 2}")
                m.d.sync += node.eq(pair[0] if len(pair) == 1 else
                                    Mux(pair[0] > pair[1], pair[0], pair[1]))
                merged.append(node)
            level, depth = merged, depth + 1
        e = level[0]
        # The tree's last level is valid from s + 1 + depth; it is consumed at `arm`.
        assert 1 + depth <= K - 1, "RUN_START_LATENCY too small for the window max tree"

        slot_m1, slot_zero = threshold("slot_end", config.period - 1)
        decide_m1 = Signal(signed(ow + 2))
        with m.If(arm):
            m.d.sync += decide_m1.eq(e + L - 1)

        # Timeout: tl = T - 1 - (t - s) ends the run when it turns negative (t = s + T).
        # Deadline slack: dl = T - e - L - 2 - (t - s) >= 0 lets a go in cycle t start an
        # attempt at t + 1 whose decision t + 1 + e + L falls before s + T. Until `arm`, dl
        # counts with e = 0, and at `arm` subtracts e (+1 for the cycle): dl + ~e.
        has_timeout = Signal()
        time_left = Signal(signed(lw + 2))
        slack = Signal(signed(lw + 3))
        with m.If(start_accept):
            m.d.sync += [
                has_timeout.eq(config.timeout != 0),
                time_left.eq(Mux(config.timeout != 0, config.timeout - 2, 0)),
                slack.eq(Mux(config.timeout != 0, config.timeout - (L + 3), 0)),
            ]
        with m.Elif(has_timeout):
            m.d.sync += [time_left.eq(time_left - 1),
                         slack.eq(slack + Mux(arm, ~e, -1))]
        timed_out = time_left[-1]
        deadline_ok = ~slack[-1]

        # Attempt and batch budgets: down-counters decremented by the attempt strobe, with
        # registered zero flags (consecutive attempts are >= period >= 3 cycles apart).
        has_max = Signal()
        attempts_left = Signal(lw)
        attempts_ok = Signal()
        batch_left = Signal(lw)
        batch_hit = Signal()
        with m.If(start_accept):
            m.d.sync += [has_max.eq(config.max_attempts != 0),
                         attempts_left.eq(config.max_attempts)]
        with m.Elif(attempt_now):
            m.d.sync += attempts_left.eq(attempts_left - 1)
        m.d.sync += [
            attempts_ok.eq(~has_max | (attempts_left != 0)),
            batch_hit.eq(has_batch & (batch_left == 0)),
        ]

        # -- scheduler ------------------------------------------------------------------------
        # One-hot states, all qualified by running: waiting for ready (level), inside an
        # attempt's period, waiting for a rising edge of ready after a batch.
        st_wait = Signal()
        st_attempt = Signal()
        st_recal = Signal()
        slot_end_flag = Signal()
        m.d.sync += slot_end_flag.eq(next_is(slot_m1, slot_zero))
        slot_end = Signal()
        m.d.comb += slot_end.eq(st_attempt & slot_end_flag)

        ready_prev = Signal()
        m.d.sync += ready_prev.eq(self.ready)

        # -- clicks ---------------------------------------------------------------------------
        clicks_prev = Signal(nc)
        m.d.sync += clicks_prev.eq(self.clicks)
        edges = Signal(nc)
        m.d.comb += edges.eq(self.clicks & ~clicks_prev)

        # Windows and outputs: level flags set when the next offset reaches the start and
        # cleared when it reaches the end; recomputed at every go.
        gate = Signal(nw)
        for w in range(nw):
            window = config.windows[w]
            start_m1, start_zero = threshold(f"window{w}_start", window.start)
            end_m1, end_zero = threshold(f"window{w}_end", window.start + window.length)
            inside = Signal(name=f"window{w}_inside")
            at_start, at_end = next_is(start_m1, start_zero), next_is(end_m1, end_zero)
            m.d.sync += inside.eq((at_start | (inside & ~go)) & ~at_end)
            m.d.comb += gate[w].eq(st_attempt & inside)
        m.d.comb += self.gate.eq(gate)
        for k in range(p.n_outputs):
            output = config.outputs[k]
            start_m1, start_zero = threshold(f"output{k}_start", output.start)
            stop_m1, stop_zero = threshold(f"output{k}_stop", output.stop)
            nonempty = Signal(name=f"output{k}_nonempty")
            with m.If(start_accept):
                m.d.sync += nonempty.eq(output.start < output.stop)
            inside = Signal(name=f"output{k}_inside")
            at_start, at_stop = next_is(start_m1, start_zero), next_is(stop_m1, stop_zero)
            m.d.sync += inside.eq((at_start | (inside & ~go)) & ~at_stop)
            m.d.comb += self.trig[k].eq(st_attempt & inside & nonempty)
        m.d.comb += self.attempt.eq(attempt_now)

        accept = Signal(nc)
        afterpulse = Signal(nc)
        for c in range(nc):
            hold = Signal(ow, name=f"hold{c}")
            hold_zero = Signal(name=f"hold{c}_zero", init=1)
            m.d.comb += [
                afterpulse[c].eq(edges[c] & running & ~hold_zero),
                accept[c].eq(edges[c] & running & hold_zero),
            ]
            with m.If(start_accept):
                m.d.sync += [hold.eq(0), hold_zero.eq(1)]
            with m.Elif(accept[c]):
                m.d.sync += [hold.eq(holdoff), hold_zero.eq(holdoff_zero)]
            with m.Else():
                with m.If(~hold_zero):
                    m.d.sync += hold.eq(hold - 1)
                m.d.sync += hold_zero.eq(hold[1:] == 0)

        # Per-cell click class and first offset; cleared by the attempt strobe (offset 0),
        # whose own clicks count: cls_next is what the table is looked up with.
        cls = [Signal(2, name=f"cls{k}") for k in range(ncell)]
        cls_next = [Signal(2, name=f"cls{k}_next") for k in range(ncell)]
        first = [Signal(ow, name=f"first{k}") for k in range(ncell)]
        second_click = Signal(ncell)
        for w in range(nw):
            for c in range(nc):
                k = w * nc + c
                hit = accept[c] & gate[w]
                m.d.comb += [
                    second_click[k].eq(hit & (cls[k] == 1) & ~attempt_now),
                    cls_next[k].eq(Mux(attempt_now, hit,
                                       Mux(cls[k] == CLASS_MANY, CLASS_MANY, cls[k] + hit))),
                ]
                m.d.sync += cls[k].eq(cls_next[k])
                with m.If(attempt_now):
                    m.d.sync += first[k].eq(0)
                with m.Elif(hit & (cls[k] == 0)):
                    m.d.sync += first[k].eq(offset)
        pattern = Signal(p.table_addr_width)
        pattern_next = Signal(p.table_addr_width)
        m.d.comb += [pattern.eq(Cat(*cls)), pattern_next.eq(Cat(*cls_next))]

        # -- decision table -----------------------------------------------------------------
        # Two banks side by side in one memory row; a per-entry bit says which bank the
        # newest write went to (fresh_now) and which one this run reads (fresh_run, taken at
        # start). The lookup address is the next pattern, so the row, the bank bit and
        # "pattern != 0" are all registered and describe the pattern of the previous cycle:
        # at offset e + L they describe the complete pattern of offset e + 1.
        tdepth = p.table_depth
        owd = p.outcome_width
        table_mem = Memory(shape=2 * owd, depth=tdepth, init=[])
        m.submodules.table = table_mem
        write_port = table_mem.write_port(granularity=owd)
        read_port = table_mem.read_port()
        fresh_now = Signal(tdepth)
        fresh_run = Signal(tdepth)
        # A write issued in cycle t is booked in t + 1: if t was a start cycle it belongs to
        # the run that started (it goes to that run's bank), otherwise to the next run (the
        # other bank; a start in t + 1 takes it over). Booking is per entry and local: no
        # entry's bit depends on the address beyond its own decoder output.
        w1_addr = Signal.like(self.table.addr)
        w1_data = Signal.like(self.table.data)
        w1_en = Signal()
        w1_started = Signal()
        m.d.sync += [w1_addr.eq(self.table.addr), w1_data.eq(self.table.data),
                     w1_en.eq(self.table.en), w1_started.eq(start_accept)]
        booked = Signal(tdepth)
        fresh_next = Signal(tdepth)
        m.d.comb += [
            booked.eq(Mux(w1_en & ~w1_started, 1, 0) << w1_addr),
            fresh_next.eq((fresh_now & ~booked) | (~fresh_run & booked)),
        ]
        m.d.sync += fresh_now.eq(fresh_next)
        with m.If(start_accept):
            m.d.sync += fresh_run.eq(fresh_next)
        # The physical write follows two cycles later, its bank found by a two-stage mux of
        # fresh_run as booked in t + 1. Lookups that matter read the run's own bank, which a
        # late write reaches only for a start-cycle write, long before the first decision.
        lo = p.table_addr_width // 2
        groups = tdepth >> lo
        partial = Signal(groups)
        w2_addr = Signal.like(w1_addr)
        w2_data = Signal.like(w1_data)
        w2_en = Signal()
        w2_started = Signal()
        m.d.sync += [
            partial.eq(Cat(fresh_run[j << lo:(j + 1) << lo].bit_select(w1_addr[:lo], 1)
                           for j in range(groups))),
            w2_addr.eq(w1_addr), w2_data.eq(w1_data), w2_en.eq(w1_en),
            w2_started.eq(w1_started),
        ]
        w3_addr = Signal.like(w1_addr)
        w3_data = Signal.like(w1_data)
        w3_en = Signal()
        w3_bank = Signal()
        m.d.sync += [
            w3_bank.eq(partial.bit_select(w2_addr[lo:], 1) ^ ~w2_started),
            w3_addr.eq(w2_addr), w3_data.eq(w2_data), w3_en.eq(w2_en),
        ]
        m.d.comb += [
            write_port.addr.eq(w3_addr),
            write_port.data.eq(Cat(w3_data, w3_data)),
            write_port.en.eq(Mux(w3_bank, 0b10, 0b01) & w3_en.replicate(2)),
            read_port.addr.eq(pattern_next),
        ]
        row = Signal(2 * owd)
        read_bank = Signal()
        pattern_nonzero = Signal()
        m.d.sync += [
            row.eq(read_port.data),
            read_bank.eq(fresh_run.bit_select(pattern, 1)),
            pattern_nonzero.eq(pattern != 0),
        ]
        table_out = Signal(owd)
        m.d.comb += table_out.eq(Mux(read_bank, row[owd:], row[:owd]))

        decide_flag = Signal()
        m.d.sync += decide_flag.eq(next_is(decide_m1, 0))
        decide = Signal()
        herald = Signal()
        diag = Signal()
        m.d.comb += [
            decide.eq(st_attempt & decide_flag & ~stop_now),
            herald.eq(decide & (table_out != 0)),
            diag.eq(decide & (table_out == 0) & diagnostic & pattern_nonzero),
            self.herald.eq(herald),
            self.outcome.eq(Mux(herald, table_out, 0)),
        ]

        # -- end of run -----------------------------------------------------------------------
        end_stop = stop_now
        end_herald = herald & stop_on_herald
        end_max = decide & ~attempts_ok
        end_timeout = running & timed_out
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

        # go needs no `done`: a timeout never coincides with an allowed go (deadline_ok is
        # low from s + T - e - L - 1 on), nor does MAX_ATTEMPTS (attempts_ok is low); only a
        # stop and a herald under stop_on_herald (in the slot's last cycle) must veto it.
        eligible = Signal()
        m.d.comb += [
            eligible.eq(((st_wait | (slot_end & ~batch_hit)) & self.ready)
                        | (st_recal & self.ready & ~ready_prev)),
            go.eq(eligible & deadline_ok & attempts_ok & ~self.stop
                  & ~(stop_on_herald & st_attempt & decide_flag & (table_out != 0))),
        ]

        with m.If(start_accept):
            m.d.sync += [running.eq(1), st_wait.eq(0), st_attempt.eq(0), st_recal.eq(0)]
        with m.Elif(done):
            m.d.sync += [running.eq(0), st_wait.eq(0), st_attempt.eq(0), st_recal.eq(0)]
        with m.Else():
            m.d.sync += [
                st_attempt.eq(go | (st_attempt & ~slot_end_flag)),
                st_wait.eq(~go & (st_wait | (slot_end & ~batch_hit) | (arm & running))),
                st_recal.eq(~go & (st_recal | (slot_end & batch_hit))),
            ]
        with m.If(start_accept):
            m.d.sync += batch_left.eq(config.batch)
        with m.Elif(slot_end & batch_hit):
            m.d.sync += batch_left.eq(batch)
        with m.Elif(attempt_now):
            m.d.sync += batch_left.eq(batch_left - 1)
        m.d.comb += self.recal.eq(st_recal)

        # -- counters -------------------------------------------------------------------------
        # Each counter adds the previous cycle's registered increment; the port shows that
        # sum (the register's next value), so it is exact without a wide adder after `go`.
        counters = self.counters
        start_q = stage[0]                  # the start, one cycle later

        def count(port, increment, name=None):
            """``increment`` is registered here unless ``name`` is None (already registered).
            Returns the counter as it stood in the previous cycle."""
            inc_q = increment
            if name is not None:
                inc_q = Signal(len(increment), name=f"{name}_inc")
                m.d.sync += inc_q.eq(increment)
            held = Signal(cw, name=f"{name or 'attempts'}_held")
            m.d.comb += port.eq(Mux(start_q, inc_q, held + inc_q))
            m.d.sync += held.eq(port)
            return held

        attempts_before = count(counters.attempts, attempt_now)   # go, one cycle later
        count(counters.cycles, running, "cycles")
        for o in range(p.n_outcomes):
            count(counters.heralds[o], herald & (table_out == o + 1), f"heralds{o}")
        any_gate = gate.any()
        for c in range(nc):
            count(counters.clicks_in_window[c], accept[c] & any_gate, f"in_window{c}")
            count(counters.clicks_out_of_window[c], accept[c] & ~any_gate, f"out_of_window{c}")
            count(counters.afterpulses[c], afterpulse[c], f"afterpulses{c}")
            for w in range(nw):
                count(counters.multi_clicks[w][c], second_click[w * nc + c], f"multi{w}_{c}")

        # Run-relative time and the current attempt's index and start, for the records.
        elapsed = Signal(cw)                # t - s
        with m.If(start_accept):
            m.d.sync += elapsed.eq(1)
        with m.Elif(running):
            m.d.sync += elapsed.eq(elapsed + 1)
        attempt_index = Signal(cw)
        attempt_start = Signal(cw)
        with m.If(attempt_now):
            m.d.sync += [attempt_index.eq(attempts_before), attempt_start.eq(elapsed)]

        # -- event records: produced at the decision and at the end, queued two deep ---------
        seq = Signal(p.seq_width)
        seq_plus_1 = Signal(p.seq_width, init=1)
        push_attempt = Signal()
        n_push = Signal(2)
        m.d.comb += [
            push_attempt.eq(herald | diag),
            n_push.eq(push_attempt + done),
        ]
        with m.If(n_push != 0):
            m.d.sync += [seq.eq(seq + n_push), seq_plus_1.eq(seq_plus_1 + n_push)]

        def load_attempt(slot):
            m.d.sync += [
                slot.seq.eq(seq),
                slot.kind.eq(Mux(herald, RecordKind.HERALD, RecordKind.DIAGNOSTIC)),
                slot.reason.eq(Reason.HERALD),
                slot.outcome.eq(self.outcome),
                slot.attempt.eq(attempt_index),
                slot.start.eq(attempt_start),
            ]
            for w in range(nw):
                for c in range(nc):
                    m.d.sync += [slot.cells[w][c].cls.eq(cls[w * nc + c]),
                                 slot.cells[w][c].first.eq(first[w * nc + c])]

        def load_end(slot):
            m.d.sync += [
                slot.seq.eq(Mux(push_attempt, seq_plus_1, seq)),
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
        count(counters.dropped_records, n_push - accepted, "dropped")

        return m
