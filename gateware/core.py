"""HeraldCore: the attempt-retry loop, windowed click classification and the decision table.

The timing contract is stated in the README and, executably, in :mod:`heraldry.sim.golden`.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import (CLASS_MANY, HERALD_LATENCY, RECORD_LATENCY, RUN_START_LATENCY,
                      START_LATENCY, STOP_LATENCY, CoreParameters, Reason, RecordKind)
from .memory import is_ice40

__all__ = ["HeraldCore"]


class _TableMemory(wiring.Component):
    """The decision table: a write port and a read port of one cycle's latency: in cycle
    t + 1, ``read_data`` is the entry at the ``read_addr`` of cycle t, provided ``read_addr``
    still holds it. The address is meant to come from flip-flops.

    On ECP5 the table is LUT RAM, one memory per value of the address's top bits, each read
    asynchronously into a register; the address's top bits pick among those registers in the
    next cycle. So the lookup is a few LUTs between flip-flops next to each other, where a
    block RAM sits at a fixed site that the click logic must reach (and its clock-to-output,
    5.8 ns without its output register, rules out reading it a cycle later). Elsewhere, and
    in simulation, it is a block RAM's synchronous read port.
    """

    def __init__(self, addr_width, data_width):
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "write_addr": In(addr_width),
            "write_data": In(data_width),
            "write_en": In(1),
            "read_addr": In(addr_width),
            "read_data": Out(data_width),
        })

    def elaborate(self, platform):
        m = Module()
        aw, dw = self.addr_width, self.data_width
        if getattr(platform, "family", None) != "ecp5":
            m.submodules.mem = mem = Memory(shape=dw, depth=1 << aw, init=[])
            self._connect_write(m, mem.write_port(), self.write_en)
            read_port = mem.read_port()
            m.d.comb += [read_port.addr.eq(self.read_addr), self.read_data.eq(read_port.data)]
            return m
        # Parts of 16 rows (one LUT RAM deep) to 64 (four, and a 4:1 multiplexer after them).
        top = max(0, min(2, aw - 4))
        low = aw - top
        parts = []
        for j in range(1 << top):
            # Yosys would fold the register into a block RAM's read port: told not to.
            m.submodules[f"mem{j}"] = mem = Memory(shape=dw, depth=1 << low, init=[],
                                                   attrs={"ram_style": "distributed"})
            chosen = self.write_addr[low:] == j
            self._connect_write(m, mem.write_port(), self.write_en & chosen,
                                self.write_addr[:low])
            read_port = mem.read_port(domain="comb")
            part = Signal(dw, name=f"part{j}")
            m.d.comb += read_port.addr.eq(self.read_addr[:low])
            m.d.sync += part.eq(read_port.data)
            parts.append(part)
        m.d.comb += self.read_data.eq(Array(parts)[self.read_addr[low:]])
        return m

    def _connect_write(self, m, port, en, addr=None):
        m.d.comb += [
            port.addr.eq(self.write_addr if addr is None else addr),
            port.data.eq(self.write_data),
            port.en.eq(en),
        ]


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
        Read throughout a run: it must hold its value of the start cycle until the run
        ends (the register bank holds it; the protocol engine refuses writes to it while a
        run is active). Its value in the start cycle is the run's.
    table : In(CoreParameters.table_port_layout())
        Decision-table write port (``addr``, ``data``, ``en``), written directly: only while
        no run is active, a write in the start cycle included (it reaches the run).
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
        Event records, from ``record_latency`` cycles after they are produced; never stalls
        the core, drops are counted.
    counts : Out(counts_layout)
        What each event counter adds in this cycle; the counters themselves are kept
        outside, in block RAM (:class:`heraldry.gateware.counters.EventCounters`). Counter
        i shows, in cycle t, the sum of its counts over the cycles after the last
        ``counters_clear`` up to and including t: the events of the run before t (an
        attempt strobe counts in its own cycle).
    counters_clear : Out(1)
        High in the cycle after an accepted start: the counters show 0 then.
    """

    #: Cycles from the last in-window offset ``e`` to ``herald`` (see README).
    latency = HERALD_LATENCY
    start_latency = START_LATENCY
    stop_latency = STOP_LATENCY
    #: Cycles from a record's production to the first cycle it can leave on ``events``.
    record_latency = RECORD_LATENCY
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
            "counts": Out(p.counts_layout()),
            "counters_clear": Out(1),
        })

    def elaborate(self, platform):
        # Timing structure. On the ECP5 a LUT and its route cost about a nanosecond and a wide
        # net several, so a register-to-register path crosses few LUTs, and a signal with
        # many loads is one or two LUTs from registers and the strobe inputs:
        # - go (it follows ready and stop) drives only the scheduler; the offsets, windows
        #   and outputs run from the registered attempt strobe;
        # - the decisions (go, done, herald, record pushes) combine the strobe inputs with
        #   flags registered a cycle ahead, from the next values of the state;
        # - offsets are compared with their thresholds a cycle ahead, as offset + 2;
        # - the configuration comes straight from the register bank's flip-flops (it holds
        #   during a run), and what is derived from it is registered;
        # - the table row is read as the click pattern completes and arrives registered
        #   twice (on ECP5 by the block RAM's own output register);
        # - a counter adds its event of the cycle before; a record is written into the queue
        #   a cycle after it is produced.
        p = self.params
        nc, nw, ncell = p.n_channels, p.n_windows, p.n_cells
        ow, lw, cw = p.offset_width, p.limit_width, p.count_width
        L, K = HERALD_LATENCY, RUN_START_LATENCY
        m = Module()
        config = self.config
        counts = self.counts

        # -- run control ----------------------------------------------------------------------
        running = Signal()
        start_accept = Signal()
        stop_now = Signal()
        done = Signal()
        m.d.comb += [
            start_accept.eq(self.start & ~running),
            stop_now.eq(self.stop & running),
            self.running.eq(running),
            self.done.eq(done),
        ]
        running_next = Signal()
        m.d.comb += running_next.eq(Mux(running, ~done, self.start))
        m.d.sync += running.eq(running_next)
        # stage[i] is high in cycle s + 1 + i; a new start cancels the pulses of an older one.
        stage = [Signal(name=f"start_stage{i}") for i in range(K - 1)]
        m.d.sync += stage[0].eq(start_accept)
        for i in range(1, K - 1):
            m.d.sync += stage[i].eq(stage[i - 1] & ~start_accept)
        arm = stage[K - 2]                  # cycle s + K - 1: the scheduler is eligible next
        assert K >= 4, "the deadline flag needs the windows' ends from s + 2 on"

        # The scheduler's one-hot states, all low while no run is active: waiting for ready
        # (a level), inside an attempt's period, waiting for a rising edge of ready after a
        # batch.
        st_wait = Signal()
        st_attempt = Signal()
        st_recal = Signal()
        # go: an attempt starts in the next cycle. The offsets, windows and outputs run from
        # the attempt strobe instead, a register, and treat its own cycle (offset 0) as a
        # special case. The strobe has copies for its many loads; they also require
        # conditions that a go implies, which keeps them apart through synthesis.
        go = Signal()
        attempt_now = Signal()              # go, one cycle later: the attempt strobe
        strobe_time = Signal()              # the same, for the offsets and thresholds
        strobe_flags = Signal()             # the same, for the windows and outputs
        m.d.sync += [attempt_now.eq(go), strobe_time.eq(go & running_next),
                     strobe_flags.eq(go & (st_wait | st_attempt | st_recal))]
        m.d.comb += self.attempt.eq(attempt_now)
        # The offset since the attempt strobe from offset 1 on, and offset + 2, which the
        # thresholds are compared with a cycle ahead.
        offset = Signal(ow, reset_less=True)
        m.d.sync += offset.eq(Mux(strobe_time, 1, offset + 1))
        offset_ahead = Signal(ow + 1, reset_less=True)
        m.d.sync += offset_ahead.eq(Mux(strobe_time, 3, offset_ahead + 1))

        def registered(name, next_value, **kwargs):
            """A register that holds, in cycle t, what ``next_value`` was in cycle t - 1."""
            flag = Signal(name=name, **kwargs)
            m.d.sync += flag.eq(next_value)
            return flag

        # ~running, for the timeout's down-counter (running's has many loads).
        idle = registered("idle", ~running_next, init=1)

        # The configuration is read from the port throughout a run: it holds its start-cycle
        # value until the run ends (the protocol engine refuses writes to it meanwhile), so
        # the core keeps no copy. What is computed from it is registered, valid from s + 1
        # (s + 2 if derived from a derived one); recomputed only until s + 2.
        # settling = ~running | stage[0] | stage[1].
        settling = registered("settling", ~running_next | start_accept | stage[0], init=1)

        def derived(name, value, shape=None):
            reg = Signal(shape if shape is not None else len(value), name=name,
                         reset_less=True)
            with m.If(settling):
                m.d.sync += reg.eq(value)
            return reg

        def offset_is(name, at):
            """offset_ahead == at; on the iCE40 as a tree of LUTs: each pair of bits compared
            in a net that synthesis keeps, so that its mapper, which sees slack here next to
            the long carry chains, cannot fold the comparison into a chain of 7 LUTs. Not
            elsewhere: a simulator evaluates every kept net each cycle."""
            if not is_ice40(platform):
                return offset_ahead == at
            pairs = []
            for i in range(0, len(offset_ahead), 2):
                pair = Signal(name=f"{name}_eq{i // 2}", attrs={"keep": 1})
                m.d.comb += pair.eq(offset_ahead[i:i + 2] == at[i:i + 2])
                pairs.append(pair)
            return Cat(*pairs).all()

        def threshold(name, at):
            """For an offset ``at`` (a per-run constant), a register saying whether the next
            cycle's offset is ``at``, valid from offset 1 on, and flags for the first two
            offsets: whether ``at`` is 0, and whether it is at most 1. Returns
            ``(is_zero, up_to_one, ahead)``."""
            ahead = Signal(name=f"{name}_ahead")
            is_zero = derived(f"{name}_zero", at == 0)
            up_to_one = derived(f"{name}_up_to_one", at <= 1)
            is_two = derived(f"{name}_two", at == 2)
            m.d.sync += ahead.eq(Mux(strobe_time, is_two, offset_is(name, at)))
            return is_zero, up_to_one, ahead

        # -- per-run constants ------------------------------------------------------------------
        holdoff = config.holdoff
        holdoff_zero = derived("holdoff_zero", holdoff == 0)       # used from s + 1 on
        holdoff_short = derived("holdoff_short", holdoff <= 1)
        has_timeout = derived("has_timeout", config.timeout != 0)  # used from s + 1 on
        stop_on_herald = config.stop_on_herald
        diagnostic = config.diagnostic
        batch = config.batch
        has_batch = derived("has_batch", batch != 0)
        max_attempts = config.max_attempts
        has_max = derived("has_max", max_attempts != 0)
        period = config.period
        window_start = [config.windows[w].start for w in range(nw)]
        window_length = [config.windows[w].length for w in range(nw)]
        # Window w ends at window_end[w] = start + length; an empty one counts as ending at 1,
        # so that the largest end is e + 1 (e: the last in-window offset, 0 without windows).
        window_end = [derived(f"window{w}_end_at", window_start[w] + window_length[w], ow + 1)
                      for w in range(nw)]
        # What the deadline compares the time left with: each window's last end (an empty
        # window counts as ending at 1, so that the largest is e + 1; e: the last in-window
        # offset, 0 without windows) plus L + 4. From window_end, so valid from s + 2.
        tw = ow + 2
        last_end = [derived(f"window{w}_last_end",
                            Mux(window_length[w] != 0, window_end[w] + (L + 4), 1 + (L + 4)),
                            tw) for w in range(nw)]

        # Timeout and deadline, from one down-counter: time_left = T - (t - s - 1), loaded
        # with the timeout itself (no subtraction between the configuration and the counter),
        # so the run ends when it reaches 1 (t = s + T), and a go in cycle g, whose decision
        # falls in g + 1 + e + L, is allowed iff that is before s + T, i.e. iff
        # time_left(g) >= e + L + 3, i.e. iff time_left(g - 2) >= every window's last_end.
        time_left = Signal(lw, reset_less=True)
        m.d.sync += time_left.eq(Mux(idle, config.timeout, time_left - 1))
        # deadline_ok: whether a go in the next cycle is allowed, from the time left a cycle
        # before (2 more) and the ends (valid from s + 2). Its high part is taken from the
        # cycle before too: if it was set, time_left is now at least 2**tw - 1, above every
        # end. (With a timeout, time_left never goes below 1, so it needs no sign.)
        time_left_large = registered("time_left_large", time_left[tw:] != 0)
        deadline_ok = Signal()
        allowed = [time_left_large | (time_left[:tw] >= last_end[w]) for w in range(nw)]
        m.d.sync += deadline_ok.eq(~has_timeout | Cat(*allowed).all())
        # The run times out a cycle after time_left reads 3 (a flag registered from its
        # next value); with T = 1 in the cycle after the start, from the configuration of the
        # start cycle.
        at_deadline = registered("at_deadline", Mux(idle, config.timeout == 2,
                                                    time_left == 3))
        end_timeout_next = ~done & has_timeout & at_deadline
        quick_timeout = registered("quick_timeout", start_accept & (config.timeout == 1))

        # -- scheduler ------------------------------------------------------------------------
        # The slot's last offset and e + L are at least 3: whether the next cycle has them.
        slot_at = derived("slot_at", period - 1, ow + 1)
        slot_ahead = registered("slot_ahead", ~go & ~strobe_time & offset_is("slot", slot_at))
        slot_end_flag = registered("slot_end_flag", ~go & slot_ahead)
        decide_ahead = Signal()             # the next cycle holds the decision (from the windows)
        slot_end = Signal()
        m.d.comb += slot_end.eq(st_attempt & slot_end_flag)
        ready_prev = registered("ready_prev", self.ready)

        # Attempt budgets: max_attempts less the attempt strobes so far reaches 0 at the last
        # attempt's strobe (the run ends at its decision, so it goes no lower): the borrow of
        # its decrement, a sign bit in place of a comparison of the attempts counter with
        # max_attempts. The decrement is computed from the counter alone and taken by its
        # enable, so the strobe, with its many loads, does not start the carry chain;
        # batches count down the attempt strobes (>= 4 cycles apart). Both counters load
        # their limits from the configuration until s + 1 (the first strobe comes later),
        # under a select of their own.
        budgets_reload = registered("budgets_reload", ~running_next | start_accept, init=1)
        attempts_left = Signal(lw, reset_less=True)
        attempts_less = Signal(signed(lw + 1))
        m.d.comb += attempts_less.eq(attempts_left - 1)
        with m.If(budgets_reload):
            m.d.sync += attempts_left.eq(max_attempts)
        with m.Elif(attempt_now):
            m.d.sync += attempts_left.eq(attempts_less[:lw])
        last_attempt = registered("last_attempt", has_max & attempts_less[-1])
        batch_left = Signal(lw, reset_less=True)
        # batch_hit is registered: at a slot's end it is up to date (the last attempt strobe
        # was at least 3 cycles before).
        batch_hit = registered("batch_hit", has_batch & (batch_left == 0))
        with m.If(budgets_reload):
            m.d.sync += batch_left.eq(batch)
        with m.Elif(slot_end & batch_hit):
            m.d.sync += batch_left.eq(batch)
        with m.Elif(attempt_now):
            m.d.sync += batch_left.eq(batch_left - 1)

        # Every consumer of go is written Mux(go, if_go, otherwise) with both sides ready
        # before go: one LUT after it (a go never comes with done).
        in_attempt = Signal()               # the attempt goes on into the next cycle
        attempt_on = Signal()               # ... unless the run ends
        st_wait_next = Signal()
        st_recal_next = Signal()
        m.d.comb += [
            attempt_on.eq(st_attempt & ~slot_end_flag),
            in_attempt.eq(~done & attempt_on),
            st_wait_next.eq(Mux(go, 0, ~done & (st_wait | (slot_end & ~batch_hit)
                                                | (arm & running)))),
            st_recal_next.eq(Mux(go, 0, ~done & (st_recal | (slot_end & batch_hit)))),
        ]
        m.d.sync += [st_attempt.eq(go | in_attempt), st_wait.eq(st_wait_next),
                     st_recal.eq(st_recal_next)]
        m.d.comb += self.recal.eq(st_recal)
        # Whether the next cycle is the current attempt's last, or its decision (no go comes
        # in between: e + L < period).
        slot_next = st_attempt & ~done & slot_ahead
        decision_next = st_attempt & ~done & decide_ahead

        # -- windows and outputs --------------------------------------------------------------
        # Level flags set when the next offset reaches the start and cleared when it reaches
        # the end, from offset 1 on; at offset 0 (the strobe's cycle) the window is open if it
        # starts there. `gate_later` is the gate from offset 1 on, registered; the run's end
        # is left to `running` (clicks are qualified by it anyway).
        gate = Signal(nw)
        gate_later = Signal(nw)
        gate_later_next = Signal(nw)
        opening = Signal(nw)                # the window is open at offset 0
        ended = Signal(nw)                  # the window's offsets are past (never at offset
                                            # 0; from 1 on if unused)
        for w in range(nw):
            start_zero, start_early, start_ahead = threshold(f"window{w}_start",
                                                             window_start[w])
            end_zero, end_early, end_ahead = threshold(f"window{w}_end", window_end[w])
            inside = Signal(name=f"window{w}_inside")
            inside_next = Mux(strobe_flags, start_early & ~end_early,
                              (start_ahead | inside) & ~end_ahead)
            m.d.comb += [
                opening[w].eq(start_zero & ~end_zero),
                gate_later_next[w].eq(inside_next & (strobe_flags | attempt_on)),
                gate[w].eq(Mux(strobe_flags, opening[w], gate_later[w])),
            ]
            m.d.sync += inside.eq(inside_next)
            past_end = Signal(name=f"window{w}_past_end")
            m.d.sync += past_end.eq(Mux(strobe_flags, end_early, end_ahead | past_end))
            used = derived(f"window{w}_used", window_length[w] != 0)
            m.d.comb += ended[w].eq(~strobe_flags & (past_end | ~used))
        m.d.sync += gate_later.eq(gate_later_next)
        # The decision comes at offset e + L, L - 1 cycles after the first offset past every
        # window (e + 1; offsets only grow within an attempt). decide_ahead: it comes next.
        all_ended = [registered("all_ended", ended.all())]
        for i in range(L - 3):
            all_ended.append(registered(f"all_ended{i + 1}", all_ended[-1]))
        m.d.comb += decide_ahead.eq(all_ended[-1] & ~registered("all_ended_before",
                                                                all_ended[-1]))
        m.d.comb += self.gate.eq(gate & running.replicate(nw))
        gate_later_any = registered("gate_later_any", gate_later_next.any())
        any_gate = Mux(strobe_flags, opening.any(), gate_later_any)
        # An output is high once the offset has passed its start and not yet its stop, which
        # also keeps an empty one (start >= stop) low without comparing the two.
        # Whether the offset has passed `at` is, from offset 1 on, the sign of a countdown from
        # at - 1 - offset that stops at -1: a carry chain next to its own flip-flops, where a
        # comparison with a shared offset counter took up to 9 ns of routing.
        for k in range(p.n_outputs):
            passed, at_zero = [], []
            for name in ("start", "stop"):
                at = getattr(config.outputs[k], name)
                left = Signal(signed(ow + 1), name=f"output{k}_{name}_left", reset_less=True)
                m.d.sync += left.eq(Mux(strobe_flags, at - 2, Mux(left[-1], left, left - 1)))
                passed.append(left[-1])
                at_zero.append(derived(f"output{k}_{name}_zero", at == 0))
            m.d.comb += self.trig[k].eq(Mux(strobe_flags, at_zero[0] & ~at_zero[1],
                                            st_attempt & passed[0] & ~passed[1]))

        # -- clicks ---------------------------------------------------------------------------
        # A click counts when the run is active and the channel's holdoff has run out. That
        # condition and the input's low level of the cycle before are one register, armed,
        # so a click is accepted by one two-input gate from the input: its many loads come
        # right after it.
        clicks_prev = Signal(nc, reset_less=True)
        m.d.sync += clicks_prev.eq(self.clicks)
        edges = Signal(nc)
        m.d.comb += edges.eq(self.clicks & ~clicks_prev)
        accept = Signal(nc)
        afterpulse = Signal(nc)
        for c in range(nc):
            hold = Signal(ow, name=f"hold{c}", reset_less=True)
            hold_zero = Signal(name=f"hold{c}_zero", init=1)
            hold_ending = Signal(name=f"hold{c}_ending")     # hold <= 1
            # armed = running & hold_zero & ~clicks_prev, from the next values; a click now
            # (the only way to an accept) disarms it, so the holdoff's next zero flag is
            # taken without one.
            armed = registered(f"armed{c}", ~self.clicks[c] & running_next
                               & (~running | hold_zero | hold_ending))
            m.d.comb += [
                afterpulse[c].eq(edges[c] & running & ~hold_zero),
                accept[c].eq(self.clicks[c] & armed),
            ]
            with m.If(~running):
                m.d.sync += hold_zero.eq(1)
            with m.Elif(accept[c]):
                m.d.sync += [hold.eq(holdoff), hold_ending.eq(holdoff_short),
                             hold_zero.eq(holdoff_zero)]
            with m.Elif(~hold_zero):
                m.d.sync += [hold.eq(hold - 1), hold_ending.eq(hold <= 2),
                             hold_zero.eq(hold_ending)]

        # Per-cell click class and first offset; cleared by the attempt strobe (offset 0),
        # whose own clicks count. The next class is chosen by the click between two values
        # from registers, so it is one LUT after the accept. The first offset follows a cycle
        # late, from a flag and the offset registered (it is read at the decision, e + L + 1).
        # `repeat` says a hit now is the cell's second.
        cls = [Signal(2, name=f"cls{k}", reset_less=True) for k in range(ncell)]
        cls_next = [Signal(2, name=f"cls{k}_next") for k in range(ncell)]
        first = [Signal(ow, name=f"first{k}", reset_less=True) for k in range(ncell)]
        first_at = registered("first_at", offset, shape=ow, reset_less=True)
        second_click = Signal(ncell)
        for w in range(nw):
            for c in range(nc):
                k = w * nc + c
                cls_if_hit = Signal(2, name=f"cls{k}_if_hit")
                cls_if_none = Signal(2, name=f"cls{k}_if_none")
                m.d.comb += [
                    cls_if_hit.eq(Mux(attempt_now, gate[w],
                                      Mux(cls[k] == CLASS_MANY, CLASS_MANY, cls[k] + gate[w]))),
                    cls_if_none.eq(Mux(attempt_now, 0, cls[k])),
                    cls_next[k].eq(Mux(accept[c], cls_if_hit, cls_if_none)),
                ]
                m.d.sync += cls[k].eq(cls_next[k])
                first_if_hit = gate[w] & (cls[k] == 0) & ~attempt_now
                first_hit = registered(f"first{k}_hit", accept[c] & first_if_hit)
                with m.If(attempt_now):
                    m.d.sync += first[k].eq(0)
                with m.Elif(first_hit):
                    m.d.sync += first[k].eq(first_at)
                repeat = gate_later[w] & (cls[k] == 1) & ~strobe_flags
                m.d.comb += second_click[k].eq(accept[c] & repeat)
        pattern = Signal(p.table_addr_width)
        m.d.comb += pattern.eq(Cat(*cls))

        # -- decision table -----------------------------------------------------------------
        # One bank, written only while no run is active (the protocol engine refuses writes
        # during a run); a write in the start cycle still reaches the run, whose first lookup
        # comes K + 2 cycles later at the earliest. Writes pass one register next to the
        # table (the register bank lies far off). The pattern is complete in the classes'
        # registers at offset e + 1: the row is read then and arrives at e + 2; the outcome
        # and what the decision does with it are registered at e + 3 = e + L.
        assert L == 3, "the table lookup pipeline is built for HERALD_LATENCY = 3"
        owd = p.outcome_width
        m.submodules.table = table = _TableMemory(p.table_addr_width, owd)
        write_addr = Signal.like(self.table.addr, reset_less=True)
        write_data = Signal.like(self.table.data, reset_less=True)
        write_en = Signal()
        m.d.sync += [write_addr.eq(self.table.addr), write_data.eq(self.table.data),
                     write_en.eq(self.table.en)]
        m.d.comb += [
            table.write_addr.eq(write_addr),
            table.write_data.eq(write_data),
            table.write_en.eq(write_en),
        ]
        # Only the lookup at e + 1, the first offset past every window, matters: its pattern is
        # in the classes' registers from then until the decision. The table reads a copy of
        # them, so that they keep few loads; the copy has a reset, to a value of its own,
        # which keeps it apart from the classes through synthesis.
        table_addr = registered("table_addr", Cat(*cls_next), shape=len(pattern),
                                init=(1 << len(pattern)) - 1)
        m.d.comb += table.read_addr.eq(table_addr)
        pattern_nonzero = registered("pattern_nonzero", pattern != 0)
        looked_up = table.read_data
        table_out = Signal(owd, reset_less=True)
        m.d.sync += table_out.eq(looked_up)
        table_hit = registered("table_hit", looked_up != 0)

        # -- decision and end of run ------------------------------------------------------------
        # Registered: this cycle holds the decision (unless a stop comes with it), and what
        # it does besides heralding.
        decision = registered("decision", decision_next)
        push_due = registered("push_due", decision_next & ((looked_up != 0)
                                                          | (diagnostic & pattern_nonzero)))
        decision_last = registered("decision_last", decision_next & last_attempt)
        # The run ends here for a herald with stop_on_herald or another reason known a cycle
        # ahead (end_due), for T = 1 (quick_timeout) or for a stop: done, with its many
        # loads, is one LUT after registers and the stop.
        halts_next = decision_next & stop_on_herald & (looked_up != 0)
        end_herald = registered("end_herald", halts_next)
        end_due = registered("end_due", halts_next | (decision_next & last_attempt)
                             | (running & end_timeout_next))
        herald = Signal()
        push_attempt = Signal()
        m.d.comb += [
            herald.eq(decision & table_hit & ~self.stop),
            push_attempt.eq(push_due & ~self.stop),
            done.eq(stop_now | end_due | quick_timeout),
            self.herald.eq(herald),
            self.outcome.eq(Mux(herald, table_out, 0)),
        ]
        with m.If(stop_now):
            m.d.comb += self.reason.eq(Reason.STOPPED)
        with m.Elif(end_herald):
            m.d.comb += self.reason.eq(Reason.HERALD)
        with m.Elif(decision_last):
            m.d.comb += self.reason.eq(Reason.MAX_ATTEMPTS)
        with m.Else():
            m.d.comb += self.reason.eq(Reason.TIMEOUT)

        # go: ready (a level, or a rising edge after a batch) where the scheduler is eligible
        # and the deadline allows it, registered from the next values. A timeout never
        # coincides with an allowed go; a stop vetoes it directly, as does a decision that
        # ends the run in the slot's last cycle.
        go_level = registered("go_level", (st_wait_next | (slot_next & ~batch_hit))
                              & deadline_ok)
        go_rise = registered("go_rise", st_recal_next & deadline_ok)
        m.d.comb += go.eq(self.ready & ~self.stop & (
            (go_level & ~end_herald & ~decision_last) | (go_rise & ~ready_prev)))

        # -- counters -------------------------------------------------------------------------
        # A counter shows the events of the cycles before; the start clears it. The counters
        # themselves are outside (EventCounters, in block RAM): the core gives each one's
        # step per cycle, a late event registered first, so a counter in cycle t adds the
        # events of t - 1. The clear comes from a register, a cycle after the start: no event
        # comes in the start cycle, so nothing is lost. The register is start_accept's, kept
        # apart from stage[0] by a condition the start implies.
        counters_clear = registered("counters_clear", start_accept & ~stage[0])
        m.d.comb += self.counters_clear.eq(counters_clear)

        def wide_counter(name, enable, clear, low, clear_to=0):
            """A count_width counter of the cycles with ``enable``, set to ``clear_to`` (0 or
            -1) by ``clear``, in two parts: the high one steps with a flag, registered a cycle
            ahead, that the ``low`` bits are all ones, so no carry chain runs the whole width.
            Returns the value and the value one step on (from the same carry chains)."""
            lo = Signal(low, name=f"{name}_low", reset_less=True)
            hi = Signal(cw - low, name=f"{name}_high", reset_less=True)
            # Zero until the first clear, like the halves (the iCE40's flip-flops start at 0).
            lo_full = Signal(name=f"{name}_low_full", reset_less=True)
            lo_next = Signal(low)
            hi_next = Signal(cw - low)
            m.d.comb += [lo_next.eq(lo + 1), hi_next.eq(hi + 1)]
            with m.If(clear):
                m.d.sync += [lo.eq(clear_to), hi.eq(clear_to), lo_full.eq(clear_to & 1)]
            with m.Elif(enable):
                m.d.sync += [lo.eq(lo_next), lo_full.eq(lo == (1 << low) - 2)]
                with m.If(lo_full):
                    m.d.sync += hi.eq(hi_next)
            return Cat(lo, hi), Cat(lo_next, Mux(lo_full, hi_next, hi))

        def count(event, port):
            increment = Signal(len(event), reset_less=True)
            m.d.sync += increment.eq(event)
            m.d.comb += port.eq(increment)

        # Attempts count the strobe's own cycle; the records number attempts from a register
        # of the strobes before less one (the current attempt's number), and the END record
        # takes the strobes before from that register's own next step.
        attempt_index, attempts_before = wide_counter("attempt_index", attempt_now,
                                                      start_accept, cw // 2, clear_to=-1)
        m.d.comb += counts.attempts.eq(attempt_now)
        cycles, _ = wide_counter("cycles", running, start_accept, 12)   # t - s - 1 if running
        count(running, counts.cycles)
        for o in range(p.n_outcomes):
            count(herald & (table_out == o + 1), counts.heralds[o])
        for c in range(nc):
            count(accept[c] & any_gate, counts.clicks_in_window[c])
            count(accept[c] & ~any_gate, counts.clicks_out_of_window[c])
            count(afterpulse[c], counts.afterpulses[c])
            for w in range(nw):
                count(second_click[w * nc + c], counts.multi_clicks[w][c])

        # The current attempt's start, t - s of its strobe x, taken from cycles (t - s - 1)
        # in x + 1.
        attempt_start = Signal(cw, reset_less=True)
        with m.If(registered("attempt_started", attempt_now)):
            m.d.sync += attempt_start.eq(cycles)

        # -- event records --------------------------------------------------------------------
        # Records are produced at the decision and at done and queued two deep in a ring of
        # two slots. The bookkeeping (level, head, drops) follows the late inputs in the
        # producing cycle; the records are written into their slots one cycle later, with
        # enables and selects that are registers, from registers that still hold them then.
        # So a record can leave from RECORD_LATENCY = 2 cycles after its production.
        assert RECORD_LATENCY == 2, "the record queue is built for RECORD_LATENCY = 2"
        n_push = Signal(2)
        m.d.comb += n_push.eq(push_attempt + done)
        level = Signal(range(3))            # records queued, offered or not yet
        head = Signal()                     # the slot of the oldest
        offered = Signal()                  # the oldest can leave: produced two cycles ago
        pop = Signal()
        remaining = Signal(range(3))
        accepted = Signal(2)
        m.d.comb += [
            self.events.valid.eq(offered),
            pop.eq(offered & self.events.ready),
            remaining.eq(level - pop),
            accepted.eq(Mux(remaining == 0, n_push, Mux(remaining == 1, n_push != 0, 0))),
        ]
        head_next = head ^ pop
        first_slot = head_next ^ remaining[0]       # where the first accepted record goes
        m.d.sync += [
            level.eq(remaining + accepted),
            head.eq(head_next),
            offered.eq(remaining != 0),     # the oldest after this cycle is an older record
        ]
        count(n_push - accepted, counts.dropped_records)

        write = Signal(2)                   # slot j is written in this cycle ...
        write_end = Signal(2)               # ... with the END record, else the attempt's
        # The number of records produced, late (stop, done), selects last between what one
        # record and two would write.
        for j in range(2):
            is_first = first_slot == j
            m.d.sync += [
                write[j].eq(Mux(n_push[1], (remaining == 0) | (is_first & (remaining == 1)),
                                n_push[0] & is_first & ~remaining[1])),
                write_end[j].eq(~is_first | ~push_attempt),
            ]
        # The sequence number follows one cycle behind too: it is the first written record's.
        pushed = registered("pushed", n_push, shape=2)
        pushed_attempt = registered("pushed_attempt", push_attempt)
        reason = registered("end_reason", self.reason, shape=Reason)
        seq = Signal(p.seq_width)
        m.d.sync += seq.eq(seq + pushed)

        def load_attempt(slot):
            m.d.sync += [
                slot.seq.eq(seq),
                slot.kind.eq(Mux(table_hit, RecordKind.HERALD, RecordKind.DIAGNOSTIC)),
                slot.reason.eq(Reason.HERALD),
                slot.outcome.eq(table_out),
                slot.attempt.eq(attempt_index),
                slot.start.eq(attempt_start),
            ]
            for w in range(nw):
                for c in range(nc):
                    m.d.sync += [slot.cells[w][c].cls.eq(cls[w * nc + c]),
                                 slot.cells[w][c].first.eq(first[w * nc + c])]

        def load_end(slot):
            m.d.sync += [
                slot.seq.eq(seq + pushed_attempt),
                slot.kind.eq(RecordKind.END),
                slot.reason.eq(reason),
                slot.outcome.eq(0),
                slot.attempt.eq(attempts_before),
                slot.start.eq(cycles),      # E - s, one cycle after the end
                slot.cells.as_value().eq(0),
            ]

        slots = [Signal(p.record_layout(), name=f"queue{i}", reset_less=True)
                 for i in range(2)]
        for j in range(2):
            with m.If(write[j]):
                with m.If(write_end[j]):
                    load_end(slots[j])
                with m.Else():
                    load_attempt(slots[j])
        m.d.comb += self.events.payload.eq(Mux(head, slots[1], slots[0]))

        return m
