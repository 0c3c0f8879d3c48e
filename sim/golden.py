"""Golden model of :class:`heraldry.gateware.HeraldCore`: the one statement of its behaviour
outside the gateware, and the oracle every differential test compares against.

The model is event driven: it walks attempts, clicks and ``ready`` edges instead of clock
cycles, so it runs millions of attempts in seconds. All times are absolute clock cycles of
the core's clock, numbered the way the benches number them (cycle 0 is the first cycle
after reset).

Semantics (mirrors the README's timing contract)
------------------------------------------------
* A run starts in cycle ``s`` (``start`` high while not running); it is *active* in cycles
  ``s+1 .. E``, where ``E`` is the cycle of the ``done`` strobe.
* The configuration and the decision table are the run's as they are in ``s`` (a table
  write in ``s`` included) and do not change while the run is active: the core reads them
  throughout the run, and the protocol engine refuses writes to them meanwhile.
  :func:`check_table_writes` rejects a table write in an active cycle.
* An attempt starts in cycle ``x`` iff, in cycle ``x-1`` (``START_LATENCY`` = 1), the
  scheduler was eligible and ``ready`` was high (or, after a batch, rose in that cycle),
  no end condition fired, ``x + e + L < s + timeout`` and fewer than ``max_attempts``
  attempts started. The scheduler is eligible from cycle ``s + K`` (``RUN_START_LATENCY``)
  while waiting, and in the last cycle of each attempt's period.
* A click (rising edge) at an active cycle ``t`` on channel ``c`` is an afterpulse if an
  accepted click on ``c`` happened at ``t'`` with ``0 < t - t' <= holdoff`` within the run;
  otherwise it is accepted and counted in every window of the current attempt containing
  its offset.
* The decision for an attempt happens at offset ``e + L``; a ``stop`` in that cycle or
  earlier suppresses it.
* Records are produced at the decision and at the end; one produced in cycle ``c`` finds
  room in the two-record queue after the transfer of cycle ``c`` (if any), or is dropped,
  and can be transferred from ``c + RECORD_LATENCY`` on.
"""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from ..gateware.layouts import (CLASS_MANY, CLASS_NONE, HERALD_LATENCY, RECORD_LATENCY,
                                RUN_START_LATENCY, CoreParameters, Reason, RecordKind,
                                flatten_layout)

__all__ = ["CoreConfig", "Record", "RunResult", "Trace", "HeraldCoreModel",
           "last_window_offset", "check_table_writes"]


@dataclass(frozen=True)
class CoreConfig:
    """The core's configuration in clock cycles, field for field the ``config`` port.

    ``windows`` is a sequence of ``(start, length)``, ``outputs`` of ``(start, stop)``.
    """
    period: int
    windows: tuple = ()
    outputs: tuple = ()
    holdoff: int = 0
    stop_on_herald: bool = False
    max_attempts: int = 0
    timeout: int = 0
    batch: int = 0
    diagnostic: bool = False

    def port_value(self, params: CoreParameters) -> dict:
        """The ``config`` port's value as a nested mapping for ``config_layout().const``."""
        windows = list(self.windows) + [(0, 0)] * (params.n_windows - len(self.windows))
        outputs = list(self.outputs) + [(0, 0)] * (params.n_outputs - len(self.outputs))
        return {
            "period": self.period,
            "windows": [{"start": s, "length": n} for s, n in windows],
            "outputs": [{"start": s, "stop": p} for s, p in outputs],
            "holdoff": self.holdoff,
            "stop_on_herald": int(self.stop_on_herald),
            "max_attempts": self.max_attempts,
            "timeout": self.timeout,
            "batch": self.batch,
            "diagnostic": int(self.diagnostic),
        }

    def pack(self, params: CoreParameters) -> int:
        return params.config_layout().const(self.port_value(params)).as_value().value


def last_window_offset(windows) -> int:
    """``e``: the largest ``start + length - 1`` over enabled windows (0 if none is enabled)."""
    ends = [s + n - 1 for s, n in windows if n > 0]
    return max(ends) if ends else 0


def check_table_writes(runs, writes):
    """Raise ``ValueError`` if a table write falls in a cycle in which a run is active.

    ``runs``: ``(s, E)`` of each run (start cycle, done cycle); ``writes``: ``(cycle, addr,
    data)``. Writes up to and in a start cycle and after a run's done cycle are legal."""
    for t, addr, _ in writes:
        for s, end in runs:
            if s < t <= end:
                raise ValueError(f"table write to entry {addr} in cycle {t}, while the run "
                                 f"started in cycle {s} is active (until cycle {end}): the "
                                 f"table is written only while no run is active")


@dataclass(frozen=True)
class Record:
    """One event record. ``cells`` holds ``(cls, first)`` per window x channel, in cell order
    ``w * n_channels + c``."""
    seq: int
    kind: RecordKind
    reason: Reason
    outcome: int
    attempt: int
    start: int
    cells: tuple

    def pack(self, params: CoreParameters) -> int:
        """The record's bits as the gateware lays them out (``record_layout``)."""
        return _RecordCodec.get(params).pack(self)

    @classmethod
    def unpack(cls, params: CoreParameters, bits: int) -> "Record":
        return _RecordCodec.get(params).unpack(bits)


class _RecordCodec:
    """Packs records with field offsets taken from ``record_layout`` (fast: plain shifts)."""

    _cache = {}

    @classmethod
    def get(cls, params):
        if params not in cls._cache:
            cls._cache[params] = cls(params)
        return cls._cache[params]

    def __init__(self, params):
        fields = {path: (offset, width)
                  for path, offset, width in flatten_layout(params.record_layout())}
        self.scalars = [(name,) + fields[(name,)]
                        for name in ("seq", "kind", "reason", "outcome", "attempt", "start")]
        self.cells = [(fields[("cells", w, c, "cls")], fields[("cells", w, c, "first")])
                      for w in range(params.n_windows) for c in range(params.n_channels)]

    def pack(self, record):
        bits = 0
        for name, offset, _ in self.scalars:
            value = getattr(record, name)
            bits |= getattr(value, "value", value) << offset
        for ((cls_offset, _), (first_offset, _)), (cls, first) in zip(self.cells,
                                                                       record.cells):
            bits |= (cls << cls_offset) | (first << first_offset)
        return bits

    def unpack(self, bits):
        values = {name: (bits >> offset) & ((1 << width) - 1)
                  for name, offset, width in self.scalars}
        cells = tuple(((bits >> co) & ((1 << cw) - 1), (bits >> fo) & ((1 << fw) - 1))
                      for (co, cw), (fo, fw) in self.cells)
        return Record(values["seq"], RecordKind(values["kind"]), Reason(values["reason"]),
                      values["outcome"], values["attempt"], values["start"], cells)


class Trace:
    """A binary signal given by the sorted cycles at which it toggles, starting at ``initial``.

    Level at cycle ``t`` is ``initial`` xor (number of toggles at cycles <= t is odd).
    """

    def __init__(self, toggles=(), initial=False):
        self.toggles = sorted(toggles)
        if len(set(self.toggles)) != len(self.toggles):
            raise ValueError("a trace cannot toggle twice in one cycle")
        self.initial = bool(initial)

    @classmethod
    def constant(cls, level):
        return cls((), level)

    @classmethod
    def from_levels(cls, levels, start=0):
        """From a per-cycle sequence of levels beginning at cycle ``start`` (level before it is
        the first level)."""
        levels = [bool(v) for v in levels]
        toggles = [start + i for i in range(1, len(levels)) if levels[i] != levels[i - 1]]
        return cls(toggles, levels[0] if levels else False)

    def level(self, t):
        return self.initial ^ (bisect_right(self.toggles, t) & 1)

    def next_high(self, t):
        """First cycle >= t at which the level is high (None if never)."""
        if self.level(t):
            return t
        i = bisect_right(self.toggles, t)
        return self.toggles[i] if i < len(self.toggles) else None

    def next_rise(self, t):
        """First cycle >= t at which the level is high and was low in the previous cycle."""
        i = bisect_left(self.toggles, t)
        while i < len(self.toggles):
            u = self.toggles[i]
            if self.level(u):
                return u
            i += 1
        return None


@dataclass
class RunResult:
    """What one run did. Cycles are absolute."""
    start_cycle: int
    end_cycle: int
    reason: Reason
    attempts: list                # start cycle of every attempt
    heralds: list                 # (cycle, outcome)
    decisions: list               # (cycle, pattern) for every decided attempt
    recal_starts: list            # cycles at which recal rose
    recal_ends: list              # cycles at which recal fell (resumed attempt, or run end + 1)
    records: list                 # Records produced, in order (including later dropped ones)
    counters: dict = field(default_factory=dict)


class HeraldCoreModel:
    """Cycle-exact reference for :class:`heraldry.gateware.HeraldCore`.

    State that outlives runs (the record sequence number and the two-entry output queue)
    lives in the instance; call :meth:`run` for each run in chronological order.

    Parameters
    ----------
    params : CoreParameters
    events_ready : Trace
        The ``events.ready`` input over all time (back-pressure on the record stream).
    """

    QUEUE_DEPTH = 2

    def __init__(self, params: CoreParameters, events_ready: Trace = None):
        self.params = params
        self.events_ready = events_ready or Trace.constant(True)
        self.seq = 0
        self.queue = []            # (production cycle, record) waiting to be transferred
        self.queue_time = 0        # cycle at which self.queue describes the queue's state
        self.transferred = []      # (cycle, Record) accepted by the stream sink
        self.produced = []         # every Record produced (transferred or dropped)
        self.dropped = []          # Records dropped at production

    # -- record stream ----------------------------------------------------------------------
    def _advance_queue(self, until):
        """Transfer queued records in cycles < until; a record produced in cycle c can leave
        from c + RECORD_LATENCY on."""
        t = self.queue_time
        while self.queue and t < until:
            produced, record = self.queue[0]
            u = self.events_ready.next_high(max(t, produced + RECORD_LATENCY))
            if u is None or u >= until:
                break
            self.transferred.append((u, record))
            self.queue.pop(0)
            t = u + 1
        self.queue_time = max(until, self.queue_time)

    def _produce(self, cycle, records):
        """Records produced in ``cycle``; returns how many were dropped."""
        # The room a record finds is counted after this cycle's transfer.
        self._advance_queue(cycle + 1)
        space = self.QUEUE_DEPTH - len(self.queue)
        dropped = 0
        for record in records:
            self.produced.append(record)
            if space > 0:
                self.queue.append((cycle, record))
                space -= 1
            else:
                self.dropped.append(record)
                dropped += 1
        return dropped

    def drain(self, until):
        """Transfer everything the sink accepts before cycle ``until``; returns transfers."""
        self._advance_queue(until)
        return self.transferred

    def _make_record(self, kind, reason, outcome, attempt, start, cells):
        record = Record(self.seq, kind, reason, outcome, attempt, start, tuple(cells))
        self.seq = (self.seq + 1) % (1 << self.params.seq_width)
        return record

    # -- one run ----------------------------------------------------------------------------
    def run(self, config: CoreConfig, table, start_cycle, clicks, ready: Trace,
            stop_cycle=None) -> RunResult:
        """Model one run.

        Parameters
        ----------
        config : CoreConfig
            Configuration present on the port in ``start_cycle``, held until the run ends.
        table : sequence of int
            Decision table as it is in ``start_cycle`` (writes in that cycle included),
            unchanged until the run ends.
        start_cycle : int
            Cycle of the accepted ``start`` strobe.
        clicks : sequence of (cycle, channel)
            Rising edges on the click inputs, sorted by cycle; edges outside the run are
            ignored. One edge per channel and cycle.
        ready : Trace
            The ``ready`` input.
        stop_cycle : int or None
            Cycle of a ``stop`` strobe, if any (ignored unless it falls inside the run).
        """
        p = self.params
        nc, nw = p.n_channels, p.n_windows
        L = HERALD_LATENCY
        s = start_cycle
        P = config.period
        windows = list(config.windows) + [(0, 0)] * (nw - len(config.windows))
        e = last_window_offset(windows)
        T, M, B, H = config.timeout, config.max_attempts, config.batch, config.holdoff
        deadline = s + T if T else None
        stop = stop_cycle if stop_cycle is not None and stop_cycle > s else None
        hard_end = min(x for x in (deadline, stop) if x is not None) \
            if (deadline or stop) else None

        counters = {
            "attempts": 0, "heralds": [0] * p.n_outcomes,
            "clicks_in_window": [0] * nc, "clicks_out_of_window": [0] * nc,
            "multi_clicks": [[0] * nc for _ in range(nw)], "afterpulses": [0] * nc,
            "dropped_records": 0, "cycles": 0,
        }
        result = RunResult(s, None, None, [], [], [], [], [], [])
        last_accept = [None] * nc
        clicks = [(t, c) for t, c in clicks if t > s]
        ci = 0

        def take_clicks(until, attempt_start=None):
            """Process clicks in cycles < until (and <= hard_end); returns per-cell counts
            and first offsets for the attempt starting at attempt_start."""
            nonlocal ci
            counts = [0] * (nw * nc)
            firsts = [0] * (nw * nc)
            limit = until if hard_end is None else min(until, hard_end + 1)
            while ci < len(clicks) and clicks[ci][0] < limit:
                t, c = clicks[ci]
                ci += 1
                if last_accept[c] is not None and 0 < t - last_accept[c] <= H:
                    counters["afterpulses"][c] += 1
                    continue
                last_accept[c] = t
                in_any = False
                if attempt_start is not None:
                    o = t - attempt_start
                    for w, (ws, wl) in enumerate(windows):
                        if ws <= o < ws + wl:
                            in_any = True
                            k = w * nc + c
                            if counts[k] == 0:
                                firsts[k] = o
                            counts[k] += 1
                            if counts[k] == 2:
                                counters["multi_clicks"][w][c] += 1
                if in_any:
                    counters["clicks_in_window"][c] += 1
                else:
                    counters["clicks_out_of_window"][c] += 1
            return counts, firsts

        def finish(end, reason, extra_records=()):
            if mode == "rise" and result.recal_starts and \
                    len(result.recal_ends) < len(result.recal_starts) and \
                    result.recal_starts[-1] <= end:
                result.recal_ends.append(end + 1)      # recal falls with running
            take_clicks(end + 1)
            result.end_cycle, result.reason = end, reason
            counters["attempts"] = len(result.attempts)
            counters["cycles"] = end - s
            records = list(extra_records)
            records.append(self._make_record(RecordKind.END, reason, 0, len(result.attempts),
                                             end - s, [(0, 0)] * (nw * nc)))
            result.records.extend(records)
            counters["dropped_records"] += self._produce(end, records)
            result.counters = counters
            return result

        def ends_by(t):
            """The hard end (stop or deadline) if it falls at or before cycle t."""
            if hard_end is not None and hard_end <= t:
                return hard_end
            return None

        def hard_reason(t):
            return Reason.STOPPED if stop is not None and stop == t else Reason.TIMEOUT

        # The scheduler: `check` is the next cycle in which it may decide to start an attempt,
        # `mode` says what it needs from `ready` there.
        check, mode = s + RUN_START_LATENCY, "level"
        batch_count = 0
        while True:
            if mode == "slot":
                go_cycle = check if ready.level(check) else None
                if go_cycle is None:
                    check, mode = check + 1, "level"
                    continue
            elif mode == "level":
                go_cycle = ready.next_high(check)
            else:  # "rise": after a batch
                go_cycle = ready.next_rise(check)
            # No attempt can start once its decision would miss the deadline.
            if deadline is not None:
                latest_go = deadline - e - L - 2      # go in cycle g => x = g+1, x+e+L < s+T
                if go_cycle is not None and go_cycle > latest_go:
                    go_cycle = None
            end = ends_by(go_cycle if go_cycle is not None else float("inf"))
            if end is not None:
                return finish(end, hard_reason(end))
            if go_cycle is None:
                raise ValueError("run never ends: no stop, timeout or further attempt "
                                 "within the given traces")
            x = go_cycle + 1
            take_clicks(x)
            if mode == "rise":
                result.recal_ends.append(x)
            result.attempts.append(x)
            index = len(result.attempts) - 1
            batch_count += 1
            # Clicks up to the decision (or the hard end, if sooner).
            d = x + e + L
            counts, firsts = take_clicks(d, attempt_start=x)
            end = ends_by(d)
            if end is not None:
                take_clicks(end + 1, attempt_start=x)
                return finish(end, hard_reason(end))
            pattern = 0
            cells = []
            for k in range(nw * nc):
                cls = min(counts[k], CLASS_MANY)
                pattern |= cls << (2 * k)
                cells.append((cls, firsts[k] if cls != CLASS_NONE else 0))
            result.decisions.append((d, pattern))
            outcome = table[pattern]
            record = []
            if outcome:
                result.heralds.append((d, outcome))
                counters["heralds"][outcome - 1] += 1
                record.append(self._make_record(RecordKind.HERALD, Reason.HERALD, outcome,
                                                index, x - s, cells))
            elif config.diagnostic and pattern:
                record.append(self._make_record(RecordKind.DIAGNOSTIC, Reason.HERALD, 0,
                                                index, x - s, cells))
            if outcome and config.stop_on_herald:
                counts, _ = take_clicks(d + 1, attempt_start=x)
                return finish(d, Reason.HERALD, record)
            if M and len(result.attempts) == M:
                take_clicks(d + 1, attempt_start=x)
                return finish(d, Reason.MAX_ATTEMPTS, record)
            if record:
                result.records.extend(record)
                counters["dropped_records"] += self._produce(d, record)
            # Rest of the period (clicks here can still fall in no window: e < d).
            slot_end = x + P - 1
            take_clicks(slot_end + 1, attempt_start=x)
            end = ends_by(slot_end)
            if end is not None:
                return finish(end, hard_reason(end))
            if B and batch_count == B:
                batch_count = 0
                result.recal_starts.append(x + P)
                check, mode = x + P, "rise"
            else:
                check, mode = slot_end, "slot"
