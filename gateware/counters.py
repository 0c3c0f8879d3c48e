"""Event counters in block RAM, with an exact snapshot and an exact clear.

Every counter of :meth:`~heraldry.gateware.layouts.CoreParameters.counters_layout` is a
``count_width`` accumulator word in a block RAM plus a few low-order bits in flip-flops (its
*residue*). The core's ``counts`` port says what each counter adds in a cycle; the residues
take it. A flush engine visits one counter per cycle, round robin, and adds its residue into
its word with one shared adder (read, add, write back), so a residue never holds more than
two rounds' worth of counts.

The value of counter i in cycle t (what a flip-flop counter would show) is

    V_i(t) = A_i + r_i(t) + counts_i(t)

(A_i the residues taken before t, written back or in flight). ``clear`` (the core's
``counters_clear``) makes V_i = 0 in its cycle and counts from the next one; ``counts`` of
the clear cycle itself is discarded (the core produces none then). The accumulator words
are not rewritten at a clear: a per-counter flag says "this word predates the clear", and
the next flush of the counter reads it as zero.

The snapshot captures V_i(S) of every counter in one cycle S, the cycle after
``snapshot_next``: the residues plus that cycle's counts move into capture registers (the
residues restart from zero), with the clear flags. In the n cycles after S the engine
flushes every counter once more, each adding its captured residue to its accumulator word
as it was at S, and writes that sum into a second block RAM (the snapshot RAM) as well as
back (zero, after a clear). ``sweeping`` is high from S + 1 until the last snapshot word is written: the register
bank holds reads and further snapshots meanwhile, so the snapshot RAM is never read half
updated. A clear during the sweep only affects what is written back.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import CoreParameters
from .memory import BlockRAM, read_latency
from .regmap import layout_leaves

__all__ = ["CounterPortSignature", "EventCounters", "counter_paths"]


def counter_paths(params: CoreParameters):
    """The counters' paths in layout order: counter i is ``counter_paths(p)[i]``, at index
    i of the snapshot RAM (the ``counters.*`` registers are in the same order)."""
    return [path for path, _, _ in layout_leaves(params.counters_layout())]


def _resolve(view, path):
    for key in path:
        view = view[key] if isinstance(key, int) else getattr(view, key)
    return view.as_value() if hasattr(view, "as_value") else view


class CounterPortSignature(wiring.Signature):
    """The register bank's side of :class:`EventCounters`.

    ``snapshot_next`` strobes a snapshot of the counters as they are in the next cycle.
    ``read_en`` reads counter ``read_addr`` of the last snapshot: ``read_data`` holds it from
    :func:`~heraldry.gateware.memory.read_latency` cycles later until the next read; only
    valid while ``sweeping`` is low (it is high from the cycle after the snapshot until the
    snapshot RAM is complete; a snapshot strobe while it is high is not allowed).
    """

    def __init__(self, params: CoreParameters):
        n = len(counter_paths(params))
        super().__init__({
            "snapshot_next": Out(1),
            "read_addr": Out(range(n)),
            "read_en": Out(1),
            "read_data": In(params.count_width),
            "sweeping": In(1),
        })


class EventCounters(wiring.Component):
    """The core's event counters, in block RAM (see the module docstring).

    Parameters
    ----------
    params : CoreParameters
    read_domain : str
        Clock domain of the snapshot RAM's read port (the register bank's); everything
        else is ``sync``, which must tick in every cycle.

    Attributes
    ----------
    counts : In(counts_layout)
        What each counter adds in this cycle (the core's ``counts``).
    clear : In(1)
        The core's ``counters_clear``.
    port : In(CounterPortSignature)
        Snapshot strobe and reads, from the register bank.
    """

    def __init__(self, params: CoreParameters, read_domain="sync"):
        self.params = params
        self.read_domain = read_domain
        super().__init__({
            "counts": In(params.counts_layout()),
            "clear": In(1),
            "port": In(CounterPortSignature(params)),
        })

    def elaborate(self, platform):
        from .regbank import fanout_copies      # the bank imports this module
        m = Module()
        p = self.params
        cw = p.count_width
        paths = counter_paths(p)
        n = len(paths)
        latency = read_latency(platform)
        # A counter's write-back lands latency + 1 cycles after its read; its next read comes
        # n cycles after that read.
        assert n >= latency + 2, f"{n} counters are too few for the flush pipeline"
        port = self.port
        clear = self.clear

        m.submodules.accumulators = acc = BlockRAM(cw, n)
        m.submodules.snapshot = snap_ram = BlockRAM(cw, n, read_domain=self.read_domain)
        m.d.comb += [snap_ram.r_addr.eq(port.read_addr), snap_ram.r_en.eq(port.read_en),
                     port.read_data.eq(snap_ram.r_data)]

        # The snapshot cycle S, a flip-flop per counter on the ECP5 (each reaches a dozen
        # flip-flops) and one for the engine.
        snaps = fanout_copies(m, platform, port.snapshot_next, n + 1, "counters_snapshot")
        snap_engine = snaps[n]

        # Round robin: counter ptr is taken in every cycle but S.
        ptr = Signal(range(n), reset_less=True)
        slot = Signal(n, init=1, reset_less=True)         # one-hot ptr
        advance = Signal()
        m.d.comb += advance.eq(~snap_engine)
        with m.If(advance):
            m.d.sync += [ptr.eq(Mux(ptr == n - 1, 0, ptr + 1)), slot.eq(slot.rotate_left(1))]
        # The n takes after S are the snapshot's flushes.
        sweep_left = Signal(range(n + 1), reset_less=True)
        with m.If(snap_engine):
            m.d.sync += sweep_left.eq(n)
        with m.Elif(sweep_left != 0):
            m.d.sync += sweep_left.eq(sweep_left - 1)
        snap_flush = Signal()
        m.d.comb += snap_flush.eq(sweep_left != 0)

        # Residues, captures and flags. Reset-less, like the words in the RAM: a reset
        # changes no count. A residue holds at most the counts of 2n cycles (a snapshot
        # flush leaves it alone, the next take comes a round later).
        residues, captures = [], []
        zeroed = Signal(n, init=(1 << n) - 1, reset_less=True)     # word predates the clear
        cap_zeroed = Signal(n, reset_less=True)
        for i, path in enumerate(paths):
            inc = _resolve(self.counts, path)
            width = (2 * n * ((1 << len(inc)) - 1)).bit_length()
            r = Signal(width, name=f"residue{i}", reset_less=True)
            c = Signal(width, name=f"captured{i}", reset_less=True)
            residues.append(r)
            captures.append(c)
            take = slot[i] & advance
            with m.If(clear | snaps[i]):
                m.d.sync += r.eq(0)
            with m.Elif(take & ~snap_flush):
                m.d.sync += r.eq(inc)
            with m.Elif(inc != 0):
                m.d.sync += r.eq(r + inc)
            with m.If(snaps[i]):
                m.d.sync += [c.eq(Mux(clear, 0, r + inc)), cap_zeroed[i].eq(zeroed[i] | clear)]
            with m.If(clear):
                m.d.sync += zeroed[i].eq(1)
            with m.Elif(take):
                m.d.sync += zeroed[i].eq(0)

        # Take (cycle T): read the word, and register what is added to it. A snapshot flush
        # adds the captured residue to the word as it was at S (zero if it predated a clear
        # at S or before) and writes the sum back, or zero if a clear came after S and
        # before T (a clear at T comes after the take, like any).
        cleared_since = Signal(reset_less=True)
        with m.If(snap_engine):
            m.d.sync += cleared_since.eq(0)
        with m.Elif(clear):
            m.d.sync += cleared_since.eq(1)
        m.d.comb += [acc.r_addr.eq(ptr), acc.r_en.eq(advance)]
        flag_now = zeroed.bit_select(ptr, 1)
        flag_cap = cap_zeroed.bit_select(ptr, 1)
        stage = dict(
            valid=(advance, 1),
            addr=(ptr, range(n)),
            snap=(advance & snap_flush, 1),
            amount=(Mux(snap_flush, Array(captures)[ptr], Array(residues)[ptr]),
                    max(len(c) for c in captures)),
            zero=(Mux(snap_flush, flag_cap, flag_now), 1),
            write_zero=(snap_flush & cleared_since, 1),
        )
        # Delayed to the cycle the word arrives (T + latency).
        pipeline_snaps = []
        for level in range(latency):
            delayed = {}
            for key, (value, shape) in stage.items():
                reg = Signal(shape, name=f"flush{level}_{key}", reset_less=True)
                m.d.sync += reg.eq(value)
                delayed[key] = (reg, shape)
            stage = delayed
            pipeline_snaps.append(stage["snap"][0])
        valid, addr, snap = (stage[k][0] for k in ("valid", "addr", "snap"))
        amount, zero, write_zero = (stage[k][0] for k in ("amount", "zero", "write_zero"))
        total = Signal(cw)
        m.d.comb += total.eq(Mux(zero, 0, acc.r_data) + amount)
        w_en = Signal(reset_less=True)
        w_addr = Signal(range(n), reset_less=True)
        w_data = Signal(cw, reset_less=True)
        s_en = Signal(reset_less=True)
        s_data = Signal(cw, reset_less=True)
        m.d.sync += [w_en.eq(valid), s_en.eq(snap)]
        with m.If(valid):
            m.d.sync += [w_addr.eq(addr), w_data.eq(Mux(write_zero, 0, total)),
                         s_data.eq(total)]
        m.d.comb += [
            acc.w_en.eq(w_en), acc.w_addr.eq(w_addr), acc.w_data.eq(w_data),
            snap_ram.w_en.eq(s_en), snap_ram.w_addr.eq(w_addr), snap_ram.w_data.eq(s_data),
            port.sweeping.eq(snap_flush | s_en | Cat(*pipeline_snaps).any()),
        ]
        return m
