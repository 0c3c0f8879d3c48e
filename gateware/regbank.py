"""Register bank: the map of :mod:`heraldry.gateware.regmap` as storage, strobes and reads
behind a simple word bus.

Reads come from one block RAM, from the event counters' snapshot RAM and from a small
multiplexer of the live words. The block RAM holds the identification block (its initial
contents), a copy of every read/write register (written through with the register) and the
snapshot status words (copied in, one word per cycle, after each SNAPSHOT strobe); the
counters' snapshot is written by :class:`~heraldry.gateware.counters.EventCounters` in the
cycles after the strobe; the multiplexer holds the live status and link words. Writes pass a
registered address decode before they reach a register or a strobe, so every output to the
core and the emulator comes from a flip-flop, and nothing is decoded or multiplexed in a
cycle without a bus access.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .counters import CounterPortSignature, counter_paths
from .emulator import emulator_config_layout
from .memory import BlockRAM, is_ecp5, read_latency
from .regmap import (CONTROL_RESEED, CONTROL_SNAPSHOT, CONTROL_START, CONTROL_STOP,
                     LINK_FIELDS, STATUS_FIELDS, WORD_BITS, Access, RegisterMap, field_at)

__all__ = ["BusSignature", "RegisterBank", "status_layout", "link_layout", "ADDR_WIDTH",
           "fanout_copies"]

#: Word-address width of the bus and of request frames (two address bytes).
ADDR_WIDTH = 16
#: Live words picked in the first read step (a power of two).
_LIVE_GROUP = 4
#: Snapshot bits per copy of the latch and shift enables (ECP5).
_SNAPSHOT_PART = 16


class BusSignature(wiring.Signature):
    """Word bus, initiator's view; one access at a time.

    ``w_stb`` writes ``w_data`` to the word at ``addr``. ``r_stb`` reads the word at
    ``addr``: ``r_ack`` is high in the cycle ``r_data`` holds it (a few cycles later, more
    while the bank copies a snapshot), and ``r_data`` keeps it until the next read.
    ``w_ack`` is high when a write is taken (likewise); the next one waits for it.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(ADDR_WIDTH),
            "r_stb": Out(1),
            "r_data": In(WORD_BITS),
            "r_ack": In(1),
            "w_stb": Out(1),
            "w_data": Out(WORD_BITS),
            "w_ack": In(1),
        })


def status_layout(params):
    """Live status the SoC feeds the bank: :data:`STATUS_FIELDS` plus the cycle counters."""
    fields = {name: width for name, (width, _) in STATUS_FIELDS.items()}
    fields["next_seq"] = params.seq_width
    fields["cycle"] = params.count_width
    fields["start_cycle"] = params.count_width
    return data.StructLayout(fields)


def link_layout():
    return data.StructLayout({name: WORD_BITS for name in LINK_FIELDS})


def _value(view):
    return view.as_value() if hasattr(view, "as_value") else view


def _word(value, index):
    return value[index * WORD_BITS:(index + 1) * WORD_BITS]


def fanout_copies(m, platform, value, n, name, levels=1):
    """Flip-flops holding ``value`` ``levels`` cycles late, to drive ``n`` parts of a wide
    register. On the ECP5, where one flip-flop could not reach every bit in a 200 MHz
    cycle, they are ``n`` copies (behind about sqrt(n) copies with ``levels=2``); elsewhere
    one. Yosys merges identical flip-flops; these stay apart because each one's enable
    includes its own output (``value | q``), which does not change what it holds. Returns a
    list of ``n`` (one flip-flop repeated, off the ECP5)."""
    if not is_ecp5(platform):
        for level in range(levels):
            q = Signal(name=f"{name}_{level}")
            m.d.sync += q.eq(value)
            value = q
        return [value] * n

    def copies(sources, count, level):
        out = [Signal(name=f"{name}_copy{level}_{i}") for i in range(count)]
        for i, q in enumerate(out):
            source = sources[i * len(sources) // count]
            with m.If(source | q):
                m.d.sync += q.eq(source)
        return out

    sources = [value]
    for level in range(levels):
        count = n if level == levels - 1 else max(1, round(n ** ((level + 1) / levels)))
        sources = copies(sources, count, level)
    return sources


class RegisterBank(wiring.Component):
    """Control/status registers generated from a :class:`RegisterMap`.

    Parameters
    ----------
    regmap : RegisterMap

    Attributes
    ----------
    bus : In(BusSignature())
        Word bus from the protocol engine.
    config : Out(config_layout)
        The configuration registers, three cycles after their bus write (so a cycle before
        the START strobe of a later write). The core reads them throughout a run; the
        protocol engine writes them only while no run is active (``Register.idle_only``),
        so a run uses what they hold in its start cycle.
    table : Out(table_port_layout)
        Decision-table write strobe; one cycle per written entry, two cycles after the bus
        write (only while no run is active, like the configuration).
    start, stop : Out(1)
        Strobes from the ``control`` register, three cycles after the bus write.
    counters : Out(CounterPortSignature)
        To the event counters: the SNAPSHOT bit captures them as they are in the cycle the
        strobes act (so a START with it captures the previous run's), and ``counters.*``
        reads come from their snapshot RAM. Reads and writes wait while they sweep.
    status : In(status_layout)
        Live status; ``cycle`` and ``start_cycle`` are latched with the counters.
    link : In(link_layout)
        Link statistics, read live (each fits one word, so a read is never torn).
    emulator, emulator_seed : Out
        Link-emulator registers (only with ``SocParameters.emulator``).
    reseed : Out(1)
        Strobe from the ``control`` register's RESEED bit.
    busy : Out(1)
        Low while no access, strobe or snapshot copy or sweep is in flight: then a clock edge
        without a bus strobe changes nothing (what lets a simulation skip the bank's edges).
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        p = regmap.soc.core
        self._storage_layouts = {"config": p.config_layout()}
        if regmap.soc.emulator:
            self._storage_layouts["emulator"] = emulator_config_layout(p)
            self._storage_layouts["emulator_seed"] = data.StructLayout(
                {"lo": WORD_BITS, "hi": WORD_BITS})
        super().__init__({
            "bus": In(BusSignature()),
            "table": Out(p.table_port_layout()),
            "start": Out(1),
            "stop": Out(1),
            "counters": Out(CounterPortSignature(p)),
            "status": In(status_layout(p)),
            "link": In(link_layout()),
            **{name: Out(layout) for name, layout in self._storage_layouts.items()},
            **({"reseed": Out(1)} if regmap.soc.emulator else {}),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        regmap = self.regmap
        p = regmap.soc.core
        bus = self.bus
        regs = list(regmap)

        # Read/write storage; reset-less like its copy in the block RAM, so the two agree
        # whatever resets.
        storage = {name: Signal(layout, name=f"{name}_regs", reset_less=True)
                   for name, layout in self._storage_layouts.items()}
        for name, regs_view in storage.items():
            m.d.comb += getattr(self, name).eq(regs_view)
        rw = [r for r in regs if r.access is Access.RW]
        live = [r for r in regs if r.access is Access.RO]
        snap = [r for r in regs if r.access is Access.SNAPSHOT]
        stored = [r for r in regs if r.access in (Access.CONST, Access.RW, Access.SNAPSHOT)]
        control = regmap["control"]
        table = regmap["table"]

        # -- the block RAM ------------------------------------------------------------------
        depth = max(r.addr + r.words for r in stored)
        init = [0] * depth
        for reg in regs:
            if reg.access is Access.CONST:
                for k in range(reg.words):
                    init[reg.addr + k] = (reg.reset >> (k * WORD_BITS)) & ((1 << WORD_BITS) - 1)
        m.submodules.readback = ram = BlockRAM(WORD_BITS, depth, init)
        ram_bits = len(ram.r_addr)
        assert read_latency(platform) <= 3, "the read pipeline waits three cycles for the RAM"

        # -- writes: decoded into registers (W1); applied (W2) unless a snapshot copy runs --
        w1_valid = Signal()
        w1_addr = Signal(ADDR_WIDTH)
        w1_data = Signal(WORD_BITS)
        w1_hit = Signal(len(rw))
        w1_rw = Signal()
        w1_control = Signal()
        w1_snapshot = Signal()       # W1 holds a control write with SNAPSHOT, not yet applied
        w1_table = Signal()
        copying = Signal()           # from the SNAPSHOT decision to the last word copied
        apply = Signal()
        m.d.comb += apply.eq(w1_valid & ~copying)
        m.d.sync += [w1_valid.eq(bus.w_stb | (w1_valid & ~apply)), bus.w_ack.eq(apply),
                     w1_snapshot.eq(Mux(bus.w_stb,
                                        (bus.addr == control.addr)
                                        & bus.w_data[CONTROL_SNAPSHOT.bit_length() - 1],
                                        w1_snapshot & ~apply))]
        with m.If(bus.w_stb):
            m.d.sync += [
                w1_addr.eq(bus.addr), w1_data.eq(bus.w_data),
                w1_hit.eq(Cat(bus.addr == r.addr for r in rw)),
                w1_rw.eq(Cat((bus.addr >= lo) & (bus.addr < hi) for lo, hi in
                             regmap.ranges(lambda r: r.access is Access.RW)).any()),
                w1_control.eq(bus.addr == control.addr),
                w1_table.eq((bus.addr >= table.addr) & (bus.addr < table.addr + table.count)),
            ]

        # The registers take an applied write a cycle later, from a register of its enable
        # per register: apply reaches their clock enables through flip-flops of its own, not
        # across the SoC in one cycle. On the ECP5 the word, too, crosses the die in two
        # cycles, through a copy per register loaded while the write waits in W1 (their
        # enables, the registers' hits, keep the copies apart through synthesis); elsewhere
        # through the RAM's write word (below), which every applied register write loads.
        w2_we = Signal(len(rw))
        m.d.sync += w2_we.eq(w1_hit & apply.replicate(len(rw)))
        w2_data = Signal(WORD_BITS)
        if is_ecp5(platform):
            words = []
            for i, reg in enumerate(rw):
                word = Signal(reg.width, name=f"w2_word{i}", reset_less=True)
                with m.If(w1_hit[i]):
                    m.d.sync += word.eq(w1_data[:reg.width])
                words.append(word)
        else:
            words = [w2_data[:reg.width] for reg in rw]
        for i, reg in enumerate(rw):
            with m.If(w2_we[i]):
                target = field_at(storage[reg.port], reg.path)
                m.d.sync += target.eq(words[i])
        m.d.sync += self.table.en.eq(apply & w1_table)
        with m.If(apply & w1_table):
            m.d.sync += [self.table.addr.eq(w1_addr - table.addr),
                         self.table.data.eq(w1_data)]
        # The control strobes act a cycle later (W3), with the snapshot latch, so that a
        # START with SNAPSHOT latches the previous run's counters.
        strobes = [(self.start, CONTROL_START), (self.stop, CONTROL_STOP)]
        if regmap.soc.emulator:
            strobes.append((self.reseed, CONTROL_RESEED))
        strobes_on = []
        for strobe, bit in strobes:
            early = Signal(name=f"{strobe.name}_early")
            m.d.sync += [early.eq(apply & w1_control & w1_data[bit.bit_length() - 1]),
                         strobe.eq(early)]
            strobes_on += [early, strobe]

        # The RAM's write port is driven from registers, loaded with a read/write register's
        # copy (the word masked to its width, like the register) or a snapshot word.
        w2_valid = Signal()
        w2_addr = Signal(ram_bits)
        shadow = apply & w1_rw
        m.d.sync += w2_valid.eq(shadow)
        with m.If(shadow):
            keep = Cat(Cat(w1_hit[i] for i, r in enumerate(rw) if r.width > bit).any()
                       for bit in range(WORD_BITS))
            m.d.sync += [w2_addr.eq(w1_addr), w2_data.eq(w1_data & keep)]
        ram_we = Signal()
        ram_wa = Signal(ram_bits)
        ram_wd = Signal(WORD_BITS)
        m.d.comb += [ram.w_en.eq(ram_we), ram.w_addr.eq(ram_wa), ram.w_data.eq(ram_wd)]
        m.d.sync += ram_we.eq(w2_valid)
        with m.If(w2_valid):
            m.d.sync += [ram_wa.eq(w2_addr), ram_wd.eq(w2_data)]

        # -- snapshot: the counters capture theirs; the status words, a parallel latch, are
        # copied into the RAM word by word. --------------------------------------------------
        counter_regs = [r for r in snap if r.port == "counters"]
        snap = [r for r in snap if r.port != "counters"]
        widths = {r.width for r in snap}
        if len(widths) != 1:
            raise ValueError(f"snapshot registers of different widths {sorted(widths)}: the "
                             f"copy shifts one register per step and needs a single width")
        (snap_width,) = widths
        words_per_reg = -(-snap_width // WORD_BITS)
        first = snap[0].addr
        assert [r.addr for r in snap] == [first + i * words_per_reg for i in range(len(snap))]
        views = {"status": self.status}
        n_words = len(snap) * words_per_reg
        # The chain holds one register per segment, the head first. The copy is decided in
        # cycle L - 2 (W1 of the SNAPSHOT write), latches in L and writes word j of the
        # chain in L + 1 + j, uninterrupted (writes wait, reads too); the chain moves on after
        # each register's last word. The latch strobe and the shift enable reach every bit
        # of the chain, so both are known two cycles ahead and pass a tree of flip-flops
        # (fanout_copies).
        segments = [Signal(snap_width, name=f"snap{i}") for i in range(len(snap))]
        decide = Signal()
        m.d.comb += decide.eq(w1_snapshot & ~copying)     # = apply & SNAPSHOT, one LUT
        ahead_left = Signal(range(n_words + 1))     # the shift schedule, two cycles ahead
        ahead_on = Signal()          # ahead_left != 0 (never together with decide)
        ahead_word = Signal(range(words_per_reg))
        shift_ahead = Signal()
        with m.If(decide):
            m.d.sync += [copying.eq(1), ahead_left.eq(n_words), ahead_on.eq(1),
                         ahead_word.eq(0)]
        with m.If(ahead_on):
            m.d.comb += shift_ahead.eq(ahead_word == words_per_reg - 1)
            m.d.sync += [ahead_left.eq(ahead_left - 1), ahead_on.eq(ahead_left != 1),
                         ahead_word.eq(Mux(ahead_word == words_per_reg - 1, 0,
                                           ahead_word + 1))]
        latched = Signal()           # the latch cycle L
        decided = Signal()
        m.d.sync += [decided.eq(decide), latched.eq(decided)]
        copy_left = Signal(range(n_words + 1))
        copy_addr = Signal(ram_bits)
        copy_word = Signal(range(words_per_reg))     # word of the head register
        head_words = Array(_word(segments[0], k) for k in range(words_per_reg))
        with m.If(latched):
            m.d.sync += [copy_left.eq(n_words), copy_addr.eq(first), copy_word.eq(0)]
        with m.Elif(copy_left != 0):
            m.d.sync += [ram_we.eq(1), ram_wa.eq(copy_addr), ram_wd.eq(head_words[copy_word]),
                         copy_addr.eq(copy_addr + 1), copy_left.eq(copy_left - 1),
                         copy_word.eq(Mux(copy_word == words_per_reg - 1, 0, copy_word + 1))]
        # The counters capture theirs in L too and sweep from L + 1 (sweeping): the copy is
        # over when both are.
        m.d.comb += self.counters.snapshot_next.eq(decided)
        with m.If(copying & ~(decided | latched | (copy_left > 1) | self.counters.sweeping)):
            m.d.sync += copying.eq(0)
        part = _SNAPSHOT_PART if is_ecp5(platform) else snap_width
        parts = [(i, lo, min(lo + part, snap_width))
                 for i in range(len(snap)) for lo in range(0, snap_width, part)]
        latches = fanout_copies(m, platform, decide, len(parts), "snapshot", levels=2)
        shifts = fanout_copies(m, platform, shift_ahead, len(parts), "shift", levels=2)
        for (i, lo, hi), latch, shift in zip(parts, latches, shifts):
            live_value = _value(field_at(views[snap[i].port], snap[i].path))
            following = segments[i + 1][lo:hi] if i + 1 < len(snap) else 0
            with m.If(latch):
                m.d.sync += segments[i][lo:hi].eq(live_value[lo:hi])
            with m.Elif(shift):
                m.d.sync += segments[i][lo:hi].eq(following)

        # -- reads: latch the request, launch it when no write or copy is in flight ---------
        # The live words are spread over the SoC: on the ECP5 they are picked in two
        # registered steps, within groups of _LIVE_GROUP, then the group (one group
        # elsewhere).
        live_words = {}
        for reg in live:
            value = _value(field_at(getattr(self, reg.port), reg.path))
            for k in range(reg.words):
                live_words[reg.addr + k] = _word(value, k)
        live_base = min(live_words)
        live_span = max(live_words) + 1 - live_base
        group = _LIVE_GROUP if is_ecp5(platform) else 1 << (live_span - 1).bit_length()
        group_bits = group.bit_length() - 1
        n_groups = -(-live_span // group)
        groups = []
        for g in range(n_groups):
            members = [live_words.get(live_base + g * group + i, Const(0, 1))
                       for i in range(group)]
            groups.append((Array(members), max(len(v) for v in members)))

        # Counter i's words are at counter_base + i * counter_words + k.
        if [r.path for r in counter_regs] != counter_paths(p):
            raise ValueError("the counters.* registers are not in the counters' order")
        counter_words = counter_regs[0].words
        if counter_words & (counter_words - 1):
            raise ValueError(f"count_width {p.count_width} takes {counter_words} words a "
                             f"counter; counters are read by a power-of-two word count")
        counter_base = counter_regs[0].addr
        counter_span = len(counter_regs) * counter_words
        assert [r.addr for r in counter_regs] == \
            [counter_base + i * counter_words for i in range(len(counter_regs))]
        word_bits = counter_words.bit_length() - 1

        pending = Signal()
        addr = Signal(ADDR_WIDTH)
        with m.If(bus.r_stb):
            m.d.sync += [pending.eq(1), addr.eq(bus.addr)]
        launch = Signal()
        m.d.comb += launch.eq(pending & ~(w1_valid | w2_valid | ram_we | copying))
        counter_rel = Signal(ADDR_WIDTH)
        m.d.comb += [ram.r_addr.eq(addr), ram.r_en.eq(launch), counter_rel.eq(addr - counter_base),
                     self.counters.read_addr.eq(counter_rel[word_bits:]),
                     self.counters.read_en.eq(launch)]
        s1_valid = Signal()
        s1_index = Signal(range(n_groups * group))
        s1_live = Signal()
        s1_stored = Signal()
        s1_counter = Signal()
        s1_word = Signal(max(1, word_bits))
        m.d.sync += s1_valid.eq(launch)
        with m.If(launch):
            m.d.sync += [
                pending.eq(0),
                s1_counter.eq((addr >= counter_base) & (addr < counter_base + counter_span)),
                s1_word.eq(counter_rel[:word_bits]),
                s1_index.eq(addr - live_base),
                s1_live.eq((addr >= live_base) & (addr < live_base + live_span)),
                s1_stored.eq(addr < depth),
            ]
        s2_valid = Signal()
        s2_groups = [Signal(width, name=f"s2_group{g}") for g, (_, width) in enumerate(groups)]
        s2_group = Signal(range(n_groups))
        s2_live = Signal()
        s2_stored = Signal()
        s2_counter = Signal()
        s2_word = Signal.like(s1_word)
        m.d.sync += s2_valid.eq(s1_valid)
        with m.If(s1_valid):
            m.d.sync += [s2_live.eq(s1_live), s2_stored.eq(s1_stored),
                         s2_counter.eq(s1_counter), s2_word.eq(s1_word),
                         s2_group.eq(s1_index[group_bits:])]
            m.d.sync += [reg.eq(members[s1_index[:group_bits]])
                         for reg, (members, _) in zip(s2_groups, groups)]
        s3_valid = Signal()
        # One group (off the ECP5): its register holds the word until the next read, so S3
        # takes it from there instead of a copy.
        s3_word = s2_groups[0] if n_groups == 1 else Signal(WORD_BITS)
        s3_live = Signal()
        s3_stored = Signal()
        s3_counter = Signal()
        s3_counter_word = Signal.like(s1_word)
        m.d.sync += s3_valid.eq(s2_valid)
        with m.If(s2_valid):
            if n_groups > 1:
                m.d.sync += s3_word.eq(Array(s2_groups)[s2_group])
            m.d.sync += [s3_live.eq(s2_live), s3_stored.eq(s2_stored),
                         s3_counter.eq(s2_counter), s3_counter_word.eq(s2_word)]
        m.d.sync += bus.r_ack.eq(s3_valid)
        m.d.comb += self.busy.eq(Cat(
            w1_valid, w2_valid, ram_we, copying, decided, latched, pending, s1_valid,
            s2_valid, s3_valid, bus.r_ack, bus.w_ack, self.table.en, *strobes_on).any())
        with m.If(s3_valid):
            with m.If(~s3_stored):
                m.d.sync += bus.r_data.eq(0)
            with m.Elif(s3_live):
                m.d.sync += bus.r_data.eq(s3_word)
            with m.Elif(s3_counter):
                counter_value = Cat(self.counters.read_data,
                                    Const(0, counter_words * WORD_BITS - p.count_width))
                m.d.sync += bus.r_data.eq(counter_value.word_select(s3_counter_word,
                                                                    WORD_BITS))
            with m.Else():
                m.d.sync += bus.r_data.eq(ram.r_data)
        return m
