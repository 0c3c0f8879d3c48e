"""Event counters in block RAM, with an exact snapshot and an exact clear.

Every counter of :meth:`~heraldry.gateware.layouts.CoreParameters.counters_layout` is a
``count_width`` word in a block RAM (the accumulator) plus a few low-order bits in
flip-flops, its *residue*, which adds the counter's step from the core's ``counts`` port in
every cycle and runs free modulo 2**w. A flush engine visits one counter per cycle, round
robin, reads its word, adds what the residue gained since the flush before (the word keeps
the residue as that flush saw it, above the count) with one shared adder and writes it
back. Flushes of a counter come at most 2n cycles apart, so w bits hold any gain.

The value of counter i in cycle t (what a flip-flop counter would show) is its word as of
its last flush plus what its residue gained since, including the step of cycle t.
``clear`` (the core's ``counters_clear``) makes every counter 0 in its cycle and counts the
steps from the next one (the clear cycle's own are discarded; the core makes none then):
the residues restart from zero, and the words are not rewritten: a flag per counter says
"this word predates the clear", and the counter's next flush reads it as zero.

The snapshot captures every counter's value in one cycle S, the cycle after
``snapshot_next``: the residues, with that cycle's steps, and the clear flags are copied
into capture registers. The n flushes after S (one per counter) each add to the word as it
was at S what the residue had gained up to the capture, write that into a second block RAM
(the snapshot RAM) and back, as if flushing at S. ``sweeping`` is high from S + 1 until
the last snapshot word is written: the register bank holds reads and further snapshots
meanwhile, so the snapshot RAM is never read half updated. A clear during the sweep
leaves the counters still to be flushed flagged.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import CoreParameters
from .memory import BlockRAM, read_latency
from .regmap import field_at, layout_leaves

__all__ = ["CounterPortSignature", "EventCounters", "counter_paths"]


def counter_paths(params: CoreParameters):
    """The counters' paths in layout order: counter i is ``counter_paths(p)[i]``, at index
    i of the snapshot RAM (the ``counters.*`` registers are in the same order)."""
    return [path for path, _, _ in layout_leaves(params.counters_layout())]


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
        latency = read_latency(platform, distributed=True)
        # A counter's write-back lands latency + 2 cycles after its read; its next read comes
        # n cycles after that read.
        assert n >= latency + 3, f"{n} counters are too few for the flush pipeline"
        port = self.port
        clear = self.clear
        steps = [Value.cast(field_at(self.counts, path)) for path in paths]
        # Residues run free modulo 2**w; a flush adds what they gained since the last one it
        # saw (kept in the RAM word above the count). Flushes of a counter see it at most 2n
        # cycles apart (n, or a snapshot's and the round after), so w holds that.
        w = (2 * n * max((1 << len(step)) - 1 for step in steps)).bit_length()

        # n words: LUT RAM on the ECP5, so that the flush logic can lie anywhere.
        m.submodules.accumulators = acc = BlockRAM(cw + w, n, distributed=True)
        m.submodules.snapshot = snap_ram = BlockRAM(cw, n, read_domain=self.read_domain,
                                                    distributed=True)
        m.d.comb += [snap_ram.r_addr.eq(port.read_addr), snap_ram.r_en.eq(port.read_en),
                     port.read_data.eq(snap_ram.r_data)]

        # The residues, packed into words of up to 64 bits with a guard bit after each one but
        # the last, that takes its carry out and is cleared: one add a word (what Verilator
        # does fast, and the same carry logic as a counter each in hardware).
        field = w + 1
        index_bits = (64 // field).bit_length() - 1
        per_word = 1 << index_bits
        groups = [list(range(i, min(i + per_word, n))) for i in range(0, n, per_word)]
        snaps = fanout_copies(m, platform, port.snapshot_next, len(groups) + 1,
                              "counters_snapshot")
        snap_engine = snaps[-1]
        residues, captures = [], []
        for g, members in enumerate(groups):
            width = len(members) * field - 1
            r = Signal(width, name=f"residues{g}", reset_less=True)
            c = Signal(width, name=f"captured{g}", reset_less=True)
            gained = Signal(width)
            keep = (1 << width) - 1 - sum(1 << (k * field + w) for k in range(len(members) - 1))
            added = Cat(*(Cat(steps[i], Const(0, field - len(steps[i]))) for i in members))
            m.d.comb += gained.eq((r + added[:width]) & Const(keep, width))
            m.d.sync += r.eq(Mux(clear, 0, gained))
            with m.If(snaps[g]):
                m.d.sync += c.eq(Mux(clear, 0, gained))
            residues.append(Cat(r, Const(0, 64 - width)))
            captures.append(Cat(c, Const(0, 64 - width)))

        # Round robin: counter ptr is taken in every cycle; the n takes after S are the
        # snapshot's flushes.
        ptr = Signal(range(n), reset_less=True)
        slot = Signal(n, init=1, reset_less=True)         # one-hot ptr
        m.d.sync += [ptr.eq(ptr + 1 if n & (n - 1) == 0 else Mux(ptr == n - 1, 0, ptr + 1)),
                     slot.eq(slot.rotate_left(1))]
        sweep_left = Signal(range(n + 1), reset_less=True)
        snap_flush = Signal(reset_less=True)        # sweep_left != 0, as a flip-flop
        with m.If(snap_engine):
            m.d.sync += [sweep_left.eq(n), snap_flush.eq(1)]
        with m.Elif(snap_flush):
            m.d.sync += [sweep_left.eq(sweep_left - 1), snap_flush.eq(sweep_left != 1)]

        # A clear zeroes the residues and flags every word as older: its next flush reads it
        # as zero. Reset-less, like the words: a reset changes no count.
        # A snapshot flush (cycle T) adds to the word as it was at S (zero if it predated a
        # clear at S or before) what the residue had gained up to S + 1 (the capture); it
        # writes that back too, as if it had flushed at S + 1. If a clear came after S and
        # before T (one in T comes after the take, like any), the word stays flagged.
        cleared_since = Signal(reset_less=True)
        with m.If(snap_engine):
            m.d.sync += cleared_since.eq(0)
        with m.Elif(clear):
            m.d.sync += cleared_since.eq(1)
        zeroed = Signal(n, init=(1 << n) - 1, reset_less=True)
        cap_zeroed = Signal(n, reset_less=True)
        m.d.sync += zeroed.eq(Mux(clear, (1 << n) - 1,
                                  zeroed & ~Mux(snap_flush & cleared_since, 0, slot)))
        with m.If(snap_engine):
            m.d.sync += cap_zeroed.eq(zeroed | clear.replicate(n))
        m.d.comb += [acc.r_addr.eq(ptr), acc.r_en.eq(1)]
        stage = dict(
            addr=(ptr, range(n)),
            snap=(snap_flush, 1),
            seen=(Mux(snap_flush, Array(captures)[ptr[index_bits:]],
                      Array(residues)[ptr[index_bits:]]).word_select(ptr[:index_bits], field)[:w],
                  w),
            zero=(Mux(snap_flush, (cap_zeroed & slot).any(), (zeroed & slot).any()), 1),
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
        addr, snap, seen, zero = (stage[k][0] for k in ("addr", "snap", "seen", "zero"))
        # The word (from the RAM's output register, far off on the ECP5) gets the gain (less
        # than 2**w) into its low w bits first, registered with their carry; the high bits
        # add that carry in the next cycle, so no carry chain runs count_width bits. A zeroed
        # word is taken as read (no select before the carry chains): its high bits and carry
        # are reset, and its low bits, the gain alone, are the residue seen.
        word = acc.r_data
        gain = Signal(w)
        low = Signal(w + 1)
        m.d.comb += [gain.eq(seen - word[cw:]), low.eq(word[:w] + gain)]
        count_low = Signal(w, reset_less=True)
        count_high = Signal(cw - w, reset_less=True)
        carry = Signal(reset_less=True)
        zero_1 = Signal(reset_less=True)
        seen_1 = Signal(w, reset_less=True)
        addr_1 = Signal(range(n), reset_less=True)
        snap_1 = Signal(reset_less=True)
        m.d.sync += [count_low.eq(low[:w]), carry.eq(Mux(zero, 0, low[w])),
                     count_high.eq(Mux(zero, 0, word[w:cw])), zero_1.eq(zero),
                     seen_1.eq(seen), addr_1.eq(addr), snap_1.eq(snap)]
        pipeline_snaps.append(snap_1)
        w_addr = Signal(range(n), reset_less=True)
        w_data = Signal(cw + w, reset_less=True)
        s_en = Signal(reset_less=True)
        m.d.sync += [w_addr.eq(addr_1),
                     w_data.eq(Cat(Mux(zero_1, seen_1, count_low),
                                   (count_high + carry)[:cw - w], seen_1)),
                     s_en.eq(snap_1)]
        m.d.comb += [
            acc.w_en.eq(1), acc.w_addr.eq(w_addr), acc.w_data.eq(w_data),
            snap_ram.w_en.eq(s_en), snap_ram.w_addr.eq(w_addr), snap_ram.w_data.eq(w_data),
            port.sweeping.eq(snap_flush | s_en | Cat(*pipeline_snaps).any()),
        ]
        return m
