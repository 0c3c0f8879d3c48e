"""Framed byte protocol: constants shared with the host, and the gateware protocol engine.

Frame format (both directions)::

    SYNC  TYPE  LEN_LO LEN_HI  PAYLOAD[LEN]  CRC[4]

``SYNC`` is 0xA5. The CRC is the CRC-32 of zlib and Ethernet (reflected polynomial
0xEDB88320, initial value and final xor 0xFFFFFFFF) over ``TYPE .. PAYLOAD``, sent
little-endian; on the host it is :func:`zlib.crc32`, which runs at memory speed, so checking
frames costs the host almost nothing. Every error of up to 3 bits and every burst of up to
32 bits in a frame is caught; other damage slips through with probability 2**-32.
Multi-byte fields are little-endian.

Requests (host to device), one at a time; ``TAG`` is echoed in the response:

============  =====  ==========================================  ===========================
request       type   payload                                     response
============  =====  ==========================================  ===========================
READ          0x01   TAG ADDR[2] COUNT (1 .. max_burst words)     READ_DATA
WRITE         0x02   TAG ADDR[2] WORD[4] x n (1 .. max_burst)     WRITE_ACK
============  =====  ==========================================  ===========================

Start, stop and snapshot are writes of the ``control`` register; the decision table is a
burst write to the ``table`` region.

Device to host:

============  =====  ==========================================
READ_DATA     0x81   TAG ADDR[2] WORD[4] x COUNT
WRITE_ACK     0x82   TAG ADDR[2] COUNT
ERROR         0x8F   TAG CODE (:class:`ErrorCode`); TAG is 0 for BAD_TYPE and BAD_LENGTH
EVENTS        0x90   N RECORD[record_bytes] x N (1 .. max_records_per_frame)
============  =====  ==========================================

Event frames are sent whenever the event FIFO holds records and no response is waiting;
they interleave with responses at frame boundaries. A record is the bits of
``CoreParameters.record_layout()``, little-endian, in ``ceil(size / 8)`` bytes.

Receiver rules (device): bytes are ignored until a SYNC; a bad type or length is answered
with an ERROR at once and the receiver hunts for the next SYNC; a write is buffered whole
and applied only after its CRC and every address in it have been checked, so a corrupted
or invalid request is never partly applied.

Writes while a run is active: a write request that reaches a register written only while no
run is active (``Register.idle_only``: the configuration and the decision table, which the
core reads throughout a run) is refused whole if the core's ``running`` is high in the
cycle its checks sample it, 4 cycles after the frame's last byte is taken from ``rx``: it is
answered with ERROR RUN_ACTIVE, counted in ``link.rx_refused`` and changes nothing. One
request is executed at a time and a START's strobe reaches the core before its WRITE_ACK is
sent, so a write applied while no run is active is complete before the next run's start
cycle, and none lands during a run.
"""

import enum
import functools
import operator
import zlib

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .memory import BlockRAM
from .regbank import ADDR_WIDTH, BusSignature
from .regmap import WORD_BITS, RegisterMap

__all__ = ["SYNC", "FrameType", "ErrorCode", "crc32", "CRC_INIT", "CRC_POLY", "CRC_RESIDUE",
           "ProtocolEngine", "EventPortSignature", "engine_stats_layout", "FRAME_OVERHEAD",
           "CRC_BYTES"]

SYNC = 0xA5
CRC_INIT = 0xFFFFFFFF
#: Reflected CRC-32 polynomial.
CRC_POLY = 0xEDB88320
CRC_BYTES = 4
#: The CRC register after a frame's CRC bytes went through it too, if they were right.
CRC_RESIDUE = 0xDEBB20E3
#: Bytes of a frame besides its payload: SYNC, TYPE, LEN[2], CRC[4].
FRAME_OVERHEAD = 4 + CRC_BYTES


class FrameType(enum.IntEnum):
    READ = 0x01
    WRITE = 0x02
    READ_DATA = 0x81
    WRITE_ACK = 0x82
    ERROR = 0x8F
    EVENTS = 0x90


class ErrorCode(enum.IntEnum):
    #: The frame's CRC did not match.
    BAD_CRC = 1
    #: Unknown request type.
    BAD_TYPE = 2
    #: Length not valid for the request type (or a burst longer than max_burst).
    BAD_LENGTH = 3
    #: A read beyond the map or a write to a register that is not writable.
    BAD_ADDRESS = 4
    #: A write to a register written only while no run is active, while a run is active.
    RUN_ACTIVE = 5


def crc32(data: bytes) -> int:
    """The frame CRC of ``data`` (zlib's CRC-32)."""
    return zlib.crc32(data)


def _crc32_terms():
    """For each bit of the CRC-32 register after one byte (LSB first, before the final
    xor): the register bits and byte bits it is the xor of, as two bit masks."""
    crc = [(1 << k, 0) for k in range(32)]
    for i in range(8):
        feedback = (crc[0][0], crc[0][1] ^ (1 << i))
        shifted = crc[1:] + [(0, 0)]
        crc = [(c ^ feedback[0], b ^ feedback[1]) if CRC_POLY >> k & 1 else (c, b)
               for k, (c, b) in enumerate(shifted)]
    return crc


_CRC32_TERMS = _crc32_terms()


def _crc32_update(crc, byte):
    """One byte into the CRC-32 register (before the final xor), as one parity per bit: an
    expression used once, which a simulator evaluates only where it is used."""
    bits = []
    for crc_mask, byte_mask in _CRC32_TERMS:
        inputs = [crc[k] for k in range(32) if crc_mask >> k & 1]
        inputs += [byte[k] for k in range(8) if byte_mask >> k & 1]
        bits.append(Cat(*inputs).xor())
    return Cat(*bits)


def _times_constant(value, constant):
    """``value * constant`` as shifted adds (yosys would put a multiplier block there)."""
    terms = [value << k for k in range(constant.bit_length()) if constant >> k & 1]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _at_least(value, bound):
    """``value >= bound`` for a constant ``bound``, as and/or logic from the least
    significant bit up: yosys makes a comparison a carry chain, which on the iCE40 takes a
    logic cell per bit, and here most comparisons are against constants."""
    if bound <= 0:
        return Const(1)
    if bound >= 1 << len(value):
        return Const(0)
    result = Const(1)            # the bits below i compare >= the bound's bits below i
    for i in range(len(value)):
        result = value[i] & result if bound >> i & 1 else value[i] | result
    return result


def engine_stats_layout():
    return data.StructLayout({name: WORD_BITS for name in (
        "rx_frames", "rx_crc_errors", "rx_errors", "rx_refused", "tx_event_frames",
        "tx_records")})


class EventPortSignature(wiring.Signature):
    """The event FIFO's read side, the reader's view.

    ``level`` counts the records waiting. A ``pop`` strobe (only while ``level`` is not
    zero) takes the oldest one out: ``valid`` is high in the cycle ``data`` first shows it,
    a few cycles later, and ``data`` keeps it until the next pop.

    Parameters
    ----------
    record_layout : Layout
    depth : int
    """

    def __init__(self, record_layout, depth):
        super().__init__({
            "level": In(range(depth + 1)),
            "pop": Out(1),
            "data": In(record_layout),
            "valid": In(1),
        })


class ProtocolEngine(wiring.Component):
    """Parses request frames, executes them on the register bus, and frames responses and
    event records onto one byte stream.

    Parameters
    ----------
    regmap : RegisterMap

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host.
    tx : Out(stream.Signature(8))
        Bytes to the host, from a two-byte queue of registers.
    bus : Out(BusSignature())
        To the register bank.
    events : Out(EventPortSignature(record_layout, fifo_depth))
        The event FIFO; an event frame carries ``min(level, max_records_per_frame)``
        records.
    running : In(1)
        The core's ``running``: write requests that reach an idle-only register are refused
        while it is high (sampled once per request, see the module's documentation).
    stats : Out(engine_stats_layout())
        Frame counters (wrapping).
    busy : Out(1)
        Low while nothing happens: no frame in or out, no strobe, no queued byte. While it
        is low, a clock edge without ``rx.valid`` and with no records waiting changes
        nothing (what lets a simulation skip the engine's edges).
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        soc = regmap.soc
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(BusSignature()),
            "events": Out(EventPortSignature(soc.core.record_layout(), soc.fifo_depth)),
            "running": In(1),
            "stats": Out(engine_stats_layout()),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        # Timing on the ECP5: decisions are taken on registered flags; lengths, address
        # checks and counter ends are computed a state ahead; the received CRC is checked
        # against the CRC-32 residue (no byte compare); memory reads come from registered
        # block RAM outputs; the transmitter's multiplexers lie between registers.
        m = Module()
        soc = self.regmap.soc
        regmap = self.regmap
        max_burst = soc.max_burst
        rb = soc.record_bytes
        n_per_frame = soc.max_records_per_frame
        stats = self.stats
        rx, tx, bus, events = self.rx, self.tx, self.bus, self.events
        m.d.sync += [bus.r_stb.eq(0), bus.w_stb.eq(0), events.pop.eq(0)]
        # One address register for the receiver's writes and the transmitter's reads (the
        # receiver waits while a response is read): set when a request's checks begin, it
        # moves on after every access.
        # Only addresses inside the map reach the bus: the bits above them stay zero.
        map_bits = max(1, (regmap.size - 1).bit_length())
        bus_addr = Signal(map_bits)
        m.d.comb += bus.addr.eq(bus_addr)
        with m.If(bus.r_stb | bus.w_stb):
            m.d.sync += bus_addr.eq(bus_addr + 1)

        # -- response handed from the receiver to the transmitter ---------------------------
        # The receiver names the kind of response and waits; the transmitter builds it from
        # the receiver's registers (tag, address, count, code), which hold still meanwhile.
        resp_req = Signal()          # the receiver waits in RESPOND while high
        resp_done = Signal()         # the transmitter took the whole response (a cycle ago)
        m.d.sync += resp_done.eq(0)
        resp_read = Signal()         # READ_DATA
        resp_ack = Signal()          # WRITE_ACK (neither: ERROR)

        # -- receiver -------------------------------------------------------------------------
        # Received bytes pass one register before the state machine sees them, so that no
        # path runs from rx into it; it still takes a byte per cycle.
        byte = Signal(8)
        byte_valid = Signal()
        accepting = Signal()         # the state machine takes bytes in this state
        take = Signal()
        m.d.comb += [take.eq(byte_valid & accepting), rx.ready.eq(~byte_valid | take)]
        with m.If(rx.ready):
            m.d.sync += byte_valid.eq(rx.valid)
            with m.If(rx.valid):
                m.d.sync += byte.eq(rx.payload)
        hunting = Signal()           # the receiver waits for a SYNC byte
        rcrc = Signal(32)
        is_read = Signal()
        is_write = Signal()
        type_known = Signal()
        len_read_ok = Signal()
        len_write_ok = Signal()
        left_last = Signal()         # the byte taken next is the last of the payload
        pos = Signal(4)              # payload byte: tag, addr lo, addr hi, the rest (one-hot)
        tag = Signal(8)
        addr = Signal(ADDR_WIDTH)
        count = Signal(8)
        word = Signal(WORD_BITS - 8)     # the bytes before the one taken now
        bsel = Signal(2)             # data bytes received, modulo 4
        word_end = Signal()          # bsel == 3: the next data byte completes a word
        crc_idx = Signal(2)
        crc_ok = Signal()
        count_bad = Signal()
        # Ends of the access from the address's bits inside the map; addr_out covers the rest.
        addr_out = Signal()          # the address lies beyond the map's address bits
        read_end = Signal(max(map_bits, 8) + 1)
        write_end = Signal(max(map_bits, len(Signal(range(max_burst + 1)))) + 1)
        writable = regmap.ranges(lambda r: r.access.writable)
        after_lo = Signal(len(writable))     # addr is in or after writable range i
        before_hi = Signal(len(writable))    # the write ends in or before it
        read_bad = Signal()
        bad_addr = Signal()
        # Whether an applicable write reaches idle-only range i: it lies in the writable range
        # that holds it (checked anyway), starts before its end and ends after its start;
        # the comparisons a range's bounds make redundant (where they are the writable
        # range's) are left out.
        idle_ranges = []                     # (writable range index, lo or None, hi or None)
        for lo, hi in regmap.ranges(lambda r: r.idle_only):
            i = next(i for i, (wlo, whi) in enumerate(writable) if wlo <= lo and hi <= whi)
            wlo, whi = writable[i]
            idle_ranges.append((i, lo if lo > wlo else None, hi if hi < whi else None))
        idle_before_hi = Signal(len(idle_ranges))
        idle_after_lo = Signal(len(idle_ranges))
        refused = Signal()
        code = Signal(8)
        rx_words = Signal(range(max_burst + 1))     # write words received
        exec_idx = Signal(range(max_burst + 1))     # write words applied
        exec_last = Signal()         # the word being applied is the last
        # Payload bytes still to come (once LEN is valid); LEN's low byte until its high byte.
        left = Signal(range(max(256, 4 + 4 * max_burst)))

        m.submodules.write_buffer = buffer = BlockRAM(WORD_BITS, max(2, max_burst))
        # The buffer's output holds the word being written.
        m.d.comb += bus.w_data.eq(buffer.r_data)
        # A word is written as its last byte is taken, at rx_words, which counts it.
        buffer_we = Signal()
        m.d.comb += [buffer.w_en.eq(buffer_we), buffer.w_addr.eq(rx_words),
                     buffer.w_data.eq(Cat(word, byte))]
        with m.If(buffer_we):
            m.d.sync += rx_words.eq(rx_words + 1)

        def respond(type_):
            m.d.sync += [resp_req.eq(1), resp_read.eq(type_ == FrameType.READ_DATA),
                         resp_ack.eq(type_ == FrameType.WRITE_ACK)]
            m.next = "RESPOND"

        def fail(counter, code_value, clear_tag=False):
            m.d.sync += [counter.eq(counter + 1), code.eq(code_value)]
            if clear_tag:
                m.d.sync += tag.eq(0)
            respond(FrameType.ERROR)

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                m.d.comb += [accepting.eq(1), hunting.eq(1)]
                with m.If(take & (byte == SYNC)):
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += accepting.eq(1)
                with m.If(take):
                    m.d.sync += [is_read.eq(byte == FrameType.READ),
                                 is_write.eq(byte == FrameType.WRITE),
                                 type_known.eq((byte == FrameType.READ)
                                               | (byte == FrameType.WRITE))]
                    m.next = "LEN0"
            with m.State("LEN0"):
                m.d.comb += accepting.eq(1)
                with m.If(take):
                    m.d.sync += left[:8].eq(byte)      # LEN's low byte, checked with its high
                    m.next = "LEN1"
            with m.State("LEN1"):
                m.d.comb += accepting.eq(1)
                length = Cat(left[:8], byte)
                with m.If(take):
                    m.d.sync += [
                        left.eq(length), left_last.eq(length == 1),
                        len_read_ok.eq(length == 4),
                        len_write_ok.eq(_at_least(length, 7)
                                        & ~_at_least(length, 4 + 4 * max_burst)
                                        & (length[:2] == 3)),
                        pos.eq(1), bsel.eq(0), word_end.eq(0), rx_words.eq(0),
                    ]
                    m.next = "LEN_CHECK"
            with m.State("LEN_CHECK"):
                with m.If((is_read & len_read_ok) | (is_write & len_write_ok)):
                    m.next = "PAYLOAD"
                with m.Elif(type_known):
                    fail(stats.rx_errors, ErrorCode.BAD_LENGTH, clear_tag=True)
                with m.Else():
                    fail(stats.rx_errors, ErrorCode.BAD_TYPE, clear_tag=True)
            with m.State("PAYLOAD"):
                m.d.comb += accepting.eq(1)
                word_next = Cat(word[8:], byte)
                with m.If(take):
                    m.d.sync += [left.eq(left - 1),
                                 left_last.eq(left == 2), word.eq(word_next),
                                 pos.eq(Cat(0, pos[:2], pos[2] | pos[3]))]
                    with m.If(pos[0]):
                        m.d.sync += tag.eq(byte)
                    with m.If(pos[1]):
                        m.d.sync += addr[:8].eq(byte)
                    with m.If(pos[2]):
                        m.d.sync += addr[8:].eq(byte)
                    with m.If(pos[3]):
                        m.d.sync += [count.eq(byte), bsel.eq(bsel + 1),
                                     word_end.eq(bsel == 2)]
                        # Last byte of a word: buffer it (from registers, this cycle).
                        with m.If(is_write & word_end):
                            m.d.comb += buffer_we.eq(1)
                    with m.If(left_last):
                        m.d.sync += crc_idx.eq(0)
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += accepting.eq(1)
                with m.If(take):
                    m.d.sync += crc_idx.eq(crc_idx + 1)
                    with m.If(crc_idx == CRC_BYTES - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [
                    crc_ok.eq(rcrc == CRC_RESIDUE),
                    count_bad.eq((count == 0) | _at_least(count, max_burst + 1)),
                    addr_out.eq(addr[map_bits:].any()),
                    read_end.eq(addr[:map_bits] + count),
                    write_end.eq(addr[:map_bits] + rx_words),
                    after_lo.eq(Cat(_at_least(addr, lo) for lo, _ in writable)),
                    idle_before_hi.eq(Cat(Const(1) if hi is None else ~_at_least(addr, hi)
                                          for _, _, hi in idle_ranges)),
                    bus_addr.eq(addr),       # the first word to read or write
                ]
                m.next = "CHECK_END"
            with m.State("CHECK_END"):
                m.d.sync += [read_bad.eq(count_bad | addr_out
                                         | _at_least(read_end, regmap.size + 1)),
                             before_hi.eq(Cat(~_at_least(write_end, hi + 1)
                                              for _, hi in writable)),
                             idle_after_lo.eq(Cat(Const(1) if lo is None
                                                  else _at_least(write_end, lo + 1)
                                                  for _, lo, _ in idle_ranges))]
                m.next = "CHECK_RANGE"
            with m.State("CHECK_RANGE"):
                # A write is applied only if all its words lie in one writable range.
                m.d.sync += [bad_addr.eq(((after_lo & before_hi) == 0) | addr_out),
                             refused.eq((Cat(after_lo[i] & before_hi[i]
                                             for i, _, _ in idle_ranges)
                                         & idle_before_hi & idle_after_lo).any()
                                        & self.running)]
                m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(~crc_ok):
                    fail(stats.rx_crc_errors, ErrorCode.BAD_CRC)
                with m.Elif(is_read):
                    with m.If(read_bad):
                        fail(stats.rx_errors, ErrorCode.BAD_ADDRESS)
                    with m.Else():
                        m.d.sync += stats.rx_frames.eq(stats.rx_frames + 1)
                        respond(FrameType.READ_DATA)
                with m.Elif(bad_addr):
                    fail(stats.rx_errors, ErrorCode.BAD_ADDRESS)
                with m.Elif(refused):
                    fail(stats.rx_refused, ErrorCode.RUN_ACTIVE)
                with m.Else():
                    m.d.sync += exec_idx.eq(0)
                    m.next = "EXEC_FETCH"
            # Apply the buffered write word by word; nothing can interrupt it.
            with m.State("EXEC_FETCH"):
                m.d.comb += [buffer.r_addr.eq(exec_idx), buffer.r_en.eq(1)]
                m.d.sync += exec_last.eq(exec_idx + 1 == rx_words)
                m.next = "EXEC_WRITE"
            with m.State("EXEC_WRITE"):
                with m.If(buffer.r_valid):
                    m.d.sync += [bus.w_stb.eq(1), exec_idx.eq(exec_idx + 1)]
                    m.next = "EXEC_ACK"
            with m.State("EXEC_ACK"):
                with m.If(bus.w_ack):
                    with m.If(exec_last):
                        m.d.sync += stats.rx_frames.eq(stats.rx_frames + 1)
                        respond(FrameType.WRITE_ACK)
                    with m.Else():
                        m.next = "EXEC_FETCH"
            with m.State("RESPOND"):
                with m.If(resp_done):
                    m.d.sync += resp_req.eq(0)
                    m.next = "HUNT"

        # Every byte after SYNC goes through the CRC, the CRC bytes too: an intact frame
        # leaves the residue.
        with m.If(take):
            m.d.sync += rcrc.eq(Mux(hunting, CRC_INIT, _crc32_update(rcrc, byte)))

        # -- transmitter ----------------------------------------------------------------------
        # The byte to push next waits in `head`, and a one-hot pointer `sel` names the byte
        # loaded into `head` when it is pushed (or empty): a header position, read from
        # registers that hold still during the frame (the receiver's tag, address, count,
        # code; n_left; tlen), or a byte of the element, read from the bus word or FIFO
        # record that holds still until the next access. Nothing wide is loaded: the
        # multiplexer lies between the pointer's flip-flops and `head`. The CRC bytes come
        # from tcrc. A two-byte queue in front of tx takes a byte whenever it held fewer
        # than two in the previous cycle, so the enables are functions of flip-flops; the
        # state machine only starts the runs (header, each element) and counts them.
        queue = [Signal(8, name=f"tx_queue{i}") for i in range(2)]
        queued = Signal(range(3))
        m.d.comb += [tx.payload.eq(queue[0]), tx.valid.eq(queued != 0)]
        head = Signal(8)
        head_ok = Signal()           # `head` holds a byte to push
        head_sync = Signal()         # ... the frame's SYNC, which the CRC leaves out
        filling = Signal()           # `sel` names a byte of the current run
        in_crc = Signal()
        space = Signal()
        push = Signal()
        pop = Signal()
        advance = Signal()           # `head` takes the byte `sel` names
        m.d.comb += [
            space.eq(queued != 2),
            push.eq((head_ok | in_crc) & space),
            pop.eq((queued != 0) & tx.ready),
            advance.eq(filling & (~head_ok | space)),
        ]

        is_resp = Signal()
        resp_addr = Signal()         # READ_DATA or WRITE_ACK: the header carries the address
        # Elements (words or records) still to send; an event frame's record count N until
        # the header is out.
        n_left = Signal(8)
        no_elems = Signal()          # no elements (an ERROR or WRITE_ACK)
        n_last = Signal()            # n_left == 1
        from_bus = Signal()
        tlen = Signal(range(max(4 + 4 * max_burst, 2 + n_per_frame * rb)))  # frame LEN
        tcrc = Signal(32)
        tcrc_idx = Signal(2)

        # The byte positions `sel` walks: the header (SYNC TYPE LEN[2] TAG|N ADDR|CODE
        # ADDR COUNT, as long as the frame's kind has), then the bytes of `elem_word`. An
        # element reaches `elem_word` word by word, picked by the one-hot `wsel`: two
        # registered steps, so that the block RAM's output passes few logic levels.
        def any_of(terms):
            return functools.reduce(operator.or_, terms)

        n_words = -(-max(rb, 4) // 4)
        record = events.data.as_value()
        record = Cat(record, Const(0, 32 * n_words - len(record)))
        words = [Mux(from_bus, bus.r_data, record[:32])] + [
            record[32 * k:32 * (k + 1)] for k in range(1, n_words)]
        elem_word = Signal(32)
        wsel = Signal(n_words)       # one-hot: the word `elem_word` takes next
        wlast = Signal()             # `elem_word` holds the element's last word
        ftype = Mux(is_resp, Mux(resp_addr, Mux(from_bus, FrameType.READ_DATA,
                                                 FrameType.WRITE_ACK), FrameType.ERROR),
                    FrameType.EVENTS)
        header = [Const(SYNC, 8), ftype, tlen[:8], tlen[8:],
                  Mux(is_resp, tag, n_left), Mux(resp_addr, addr[:8], code), addr[8:],
                  rx_words]
        sources = header + [elem_word.word_select(k, 8) for k in range(4)]
        H0, E0 = 0, len(header)
        sel = Signal(len(sources))
        # The run's last byte: the header's (by kind) or the element's.
        run_last = Signal()
        m.d.comb += run_last.eq(
            (sel[H0 + 4] & ~is_resp) | (sel[H0 + 5] & is_resp & ~resp_addr)
            | (sel[H0 + 6] & resp_addr & from_bus) | (sel[H0 + 7])
            | (wlast & Mux(from_bus, sel[E0 + 3], sel[E0 + (rb - 1) % 4])))
        load_word = Signal()         # the element's first word, or with its last byte
        priming = Signal()
        m.d.comb += load_word.eq(priming | (advance & sel[E0 + 3]))
        with m.If(load_word):
            m.d.sync += [elem_word.eq(any_of(wsel[k].replicate(32) & word
                                             for k, word in enumerate(words))),
                         wsel.eq(wsel << 1), wlast.eq(from_bus | wsel[n_words - 1])]
        with m.If(advance):
            m.d.sync += [head.eq(any_of(sel[i].replicate(8) & source
                                        for i, source in enumerate(sources))),
                         head_ok.eq(1), head_sync.eq(sel[H0]),
                         # the element's bytes go round, a word at a time
                         sel.eq((sel << 1) | (sel[E0 + 3] << E0)), filling.eq(~run_last)]
        with m.Elif(space):
            m.d.sync += head_ok.eq(0)

        byte = Signal(8)
        m.d.comb += byte.eq(Mux(in_crc, ~tcrc.word_select(tcrc_idx, 8), head))
        with m.If(push & ~pop):
            with m.If(queued == 0):
                m.d.sync += queue[0].eq(byte)
            with m.Else():
                m.d.sync += queue[1].eq(byte)
            m.d.sync += queued.eq(queued + 1)
        with m.Elif(pop & ~push):
            m.d.sync += [queue[0].eq(queue[1]), queued.eq(queued - 1)]
        with m.Elif(push & pop):     # one byte queued: it leaves, the new one takes its place
            m.d.sync += queue[0].eq(byte)
        # A byte goes into the CRC as it leaves `head`, the SYNC excepted.
        with m.If(head_sync):
            m.d.sync += tcrc.eq(CRC_INIT)
        with m.Elif(head_ok & space):
            m.d.sync += tcrc.eq(_crc32_update(tcrc, head))
        with m.If(in_crc & space):
            m.d.sync += tcrc_idx.eq(tcrc_idx + 1)
        ack = Signal()
        m.d.comb += ack.eq(Mux(from_bus, bus.r_ack, events.valid))

        def start_run(position):
            m.d.sync += [sel.eq(1 << position), filling.eq(1)]

        tx_idle = Signal()
        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                m.d.comb += tx_idle.eq(1)
                # The receiver clears resp_req in this cycle if resp_done is high.
                with m.If(resp_req & ~resp_done):
                    m.next = "RESPONSE"
                with m.Elif(events.level != 0):
                    m.d.sync += [n_left.eq(Mux(_at_least(events.level, n_per_frame + 1),
                                               n_per_frame, events.level)),
                                 n_last.eq((events.level == 1) | (n_per_frame == 1))]
                    m.next = "EVENTS"
            with m.State("RESPONSE"):
                # READ_DATA: TAG ADDR[2] + count words; WRITE_ACK: TAG ADDR[2] COUNT;
                # ERROR: TAG CODE.
                m.d.sync += [
                    is_resp.eq(1), resp_addr.eq(resp_read | resp_ack), from_bus.eq(resp_read),
                    tlen.eq(Mux(resp_read, Cat(Const(3, 2), count), Mux(resp_ack, 4, 2))),
                    n_left.eq(count), no_elems.eq(~resp_read), n_last.eq(count == 1),
                ]
                start_run(H0)
                m.next = "HEADER"
            with m.State("EVENTS"):
                m.d.sync += [
                    is_resp.eq(0), resp_addr.eq(0), from_bus.eq(0),
                    tlen.eq(1 + _times_constant(n_left, rb)), no_elems.eq(0),
                    stats.tx_event_frames.eq(stats.tx_event_frames + 1),
                    stats.tx_records.eq(stats.tx_records + n_left),
                ]
                start_run(H0)
                m.next = "HEADER"
            # A run's bytes are all in `head` or behind it once `filling` drops: the next
            # element is fetched while the last bytes are pushed.
            with m.State("HEADER"):
                with m.If(~filling):
                    with m.If(no_elems):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(from_bus):
                    m.d.sync += bus.r_stb.eq(1)
                with m.Else():
                    m.d.sync += events.pop.eq(1)
                m.next = "WAIT"
            # The word or record stays at the bus or FIFO output until the next access.
            with m.State("WAIT"):
                with m.If(ack):
                    m.d.sync += wsel.eq(1)
                    m.next = "PRIME"
            with m.State("PRIME"):
                m.d.comb += priming.eq(1)
                start_run(E0)
                m.next = "ELEM"
            with m.State("ELEM"):
                with m.If(~filling):
                    m.d.sync += [n_left.eq(n_left - 1), n_last.eq(n_left == 2)]
                    with m.If(n_last):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("DRAIN"):
                # Until the payload's last byte is pushed, and into the CRC.
                with m.If(~head_ok | space):
                    m.d.sync += [tcrc_idx.eq(0), in_crc.eq(1)]
                    m.next = "CRC"
            with m.State("CRC"):
                # resp_done is registered: the end of a response reaches the receiver's
                # state machine from a flip-flop, not through the queue's space.
                with m.If(space & (tcrc_idx == CRC_BYTES - 1)):
                    m.d.sync += [resp_done.eq(is_resp), in_crc.eq(0)]
                    m.next = "IDLE"

        m.d.comb += self.busy.eq(~hunting | byte_valid | ~tx_idle | (queued != 0) | bus.r_stb
                                 | bus.w_stb | events.pop)
        return m
