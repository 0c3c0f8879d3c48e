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
"""

import enum
import zlib

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .regbank import ADDR_WIDTH, BUS_READ_LATENCY, BusSignature
from .regmap import WORD_BITS, RegisterMap

__all__ = ["SYNC", "FrameType", "ErrorCode", "crc32", "CRC_INIT", "CRC_POLY",
           "ProtocolEngine", "engine_stats_layout", "FRAME_OVERHEAD", "CRC_BYTES"]

SYNC = 0xA5
CRC_INIT = 0xFFFFFFFF
#: Reflected CRC-32 polynomial.
CRC_POLY = 0xEDB88320
CRC_BYTES = 4
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


def crc32(data: bytes) -> int:
    """The frame CRC of ``data`` (zlib's CRC-32)."""
    return zlib.crc32(data)


def _crc32_update(crc, byte):
    """One byte into the CRC-32 register (before the final xor), LSB first, as an Amaranth
    expression."""
    for i in range(8):
        feedback = crc[0] ^ byte[i]
        crc = (crc >> 1) ^ Mux(feedback, CRC_POLY, 0)
        crc = crc[:32]
    return crc


def engine_stats_layout():
    return data.StructLayout({name: WORD_BITS for name in (
        "rx_frames", "rx_crc_errors", "rx_errors", "tx_event_frames", "tx_records")})


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
        Bytes to the host.
    bus : Out(BusSignature())
        To the register bank.
    events : In(stream.Signature(record_layout))
        Records from the event FIFO.
    event_level : In(range(fifo_depth + 1))
        Records in the event FIFO; an event frame carries ``min(event_level, K)`` records.
    stats : Out(engine_stats_layout())
        Frame counters (wrapping).
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        soc = regmap.soc
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(BusSignature()),
            "events": In(stream.Signature(soc.core.record_layout())),
            "event_level": In(range(soc.fifo_depth + 1)),
            "stats": Out(engine_stats_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        soc = self.regmap.soc
        regmap = self.regmap
        max_burst = soc.max_burst
        rb = soc.record_bytes
        rec_bits = soc.core.record_layout().size
        stats = self.stats
        rx, tx, bus = self.rx, self.tx, self.bus
        # Timing: every path here is kept to a few logic levels (the SoC runs at 200 MHz on
        # the ECP5): the bus outputs are registered, lengths are counted down instead of
        # compared with sums, and the transmit CRC absorbs each byte the cycle after it.
        m.d.sync += [bus.r_stb.eq(0), bus.w_stb.eq(0)]

        # -- response handed from the receiver to the transmitter ---------------------------
        resp_req = Signal()          # receiver waits while high
        resp_done = Signal()         # transmitter finished the response frame
        resp_type = Signal(8)
        resp_hdr = Signal(data.ArrayLayout(8, 4))
        resp_hdr_len = Signal(range(5))
        resp_n = Signal(8)           # words to read from the bus (READ_DATA)
        resp_len = Signal(16)

        # -- receiver -------------------------------------------------------------------------
        byte = rx.payload
        take = Signal()
        m.d.comb += take.eq(rx.valid & rx.ready)
        rcrc = Signal(32)
        rcrc_next = _crc32_update(rcrc, byte)
        rtype = Signal(8)
        rlen_lo = Signal(8)
        left = Signal(16)            # payload bytes still to come
        idx = Signal(range(4))       # payload byte index, saturating at 3
        tag = Signal(8)
        addr = Signal(ADDR_WIDTH)
        waddr = Signal(ADDR_WIDTH + 1)   # address of the word being received
        count = Signal(8)
        read_bad = Signal()
        word = Signal(WORD_BITS)
        bsel = Signal(2)             # byte within the word being received
        crc_idx = Signal(2)
        crc_bad = Signal()
        bad_addr = Signal()
        widx = Signal(range(max_burst + 1))
        n_words = Signal(range(max_burst + 1))

        buffer = Memory(shape=WORD_BITS, depth=max_burst, init=[])
        m.submodules.write_buffer = buffer
        buf_w = buffer.write_port()
        buf_r = buffer.read_port()

        writable = regmap.ranges(lambda r: r.access.writable)
        addr_writable = Signal()
        m.d.comb += addr_writable.eq(
            Cat(*[(waddr >= lo) & (waddr < hi) for lo, hi in writable]).any())

        def respond(type_, hdr, n=0):
            m.d.sync += [resp_req.eq(1), resp_type.eq(type_), resp_hdr_len.eq(len(hdr)),
                         resp_n.eq(n), resp_len.eq(len(hdr) + (n << 2))]
            m.d.sync += [resp_hdr[i].eq(v) for i, v in enumerate(hdr)]
            m.next = "RESPOND"

        def error(code, tag_value):
            respond(FrameType.ERROR, [tag_value, code])

        expected_crc = (rcrc ^ 0xFFFFFFFF).word_select(crc_idx, 8)

        with m.FSM(name="rx_fsm"):
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(take & (byte == SYNC)):
                    m.d.sync += rcrc.eq(CRC_INIT)
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += rx.ready.eq(1)
                with m.If(take):
                    m.d.sync += [rtype.eq(byte), rcrc.eq(rcrc_next)]
                    m.next = "LEN0"
            with m.State("LEN0"):
                m.d.comb += rx.ready.eq(1)
                with m.If(take):
                    m.d.sync += [rlen_lo.eq(byte), rcrc.eq(rcrc_next)]
                    m.next = "LEN1"
            with m.State("LEN1"):
                m.d.comb += rx.ready.eq(1)
                length = Cat(rlen_lo, byte)
                with m.If(take):
                    m.d.sync += [left.eq(length), rcrc.eq(rcrc_next), idx.eq(0),
                                 bad_addr.eq(0), bsel.eq(0), widx.eq(0), read_bad.eq(0)]
                    with m.If(rtype == FrameType.READ):
                        with m.If(length == 4):
                            m.next = "PAYLOAD"
                        with m.Else():
                            m.d.sync += stats.rx_errors.eq(stats.rx_errors + 1)
                            error(ErrorCode.BAD_LENGTH, 0)
                    with m.Elif(rtype == FrameType.WRITE):
                        with m.If((length >= 7) & (length <= 3 + 4 * max_burst)
                                  & (length[:2] == 3)):
                            m.next = "PAYLOAD"
                        with m.Else():
                            m.d.sync += stats.rx_errors.eq(stats.rx_errors + 1)
                            error(ErrorCode.BAD_LENGTH, 0)
                    with m.Else():
                        m.d.sync += stats.rx_errors.eq(stats.rx_errors + 1)
                        error(ErrorCode.BAD_TYPE, 0)
            with m.State("PAYLOAD"):
                m.d.comb += rx.ready.eq(1)
                word_next = Cat(word[8:], byte)
                m.d.comb += [buf_w.addr.eq(widx), buf_w.data.eq(word_next)]
                with m.If(take):
                    m.d.sync += [rcrc.eq(rcrc_next), left.eq(left - 1)]
                    with m.If(idx != 3):
                        m.d.sync += idx.eq(idx + 1)
                    with m.Switch(idx):
                        with m.Case(0):
                            m.d.sync += tag.eq(byte)
                        with m.Case(1):
                            m.d.sync += addr[:8].eq(byte)
                        with m.Case(2):
                            m.d.sync += [addr[8:].eq(byte), waddr.eq(Cat(addr[:8], byte))]
                        with m.Default():
                            m.d.sync += [count.eq(byte), word.eq(word_next),
                                         bsel.eq(bsel + 1),
                                         # Checked now, used after the CRC.
                                         read_bad.eq((byte == 0) | (byte > max_burst)
                                                     | (waddr + byte > regmap.size))]
                            # Last byte of a word: buffer it and check its address.
                            with m.If((rtype == FrameType.WRITE) & (bsel == 3)):
                                m.d.comb += buf_w.en.eq(1)
                                m.d.sync += [widx.eq(widx + 1), waddr.eq(waddr + 1)]
                                with m.If(~addr_writable):
                                    m.d.sync += bad_addr.eq(1)
                    with m.If(left == 1):
                        m.d.sync += [crc_idx.eq(0), crc_bad.eq(0)]
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += rx.ready.eq(1)
                # One byte of the CRC compared at a time: no 32-bit compare at the end.
                byte_bad = byte != expected_crc
                with m.If(take):
                    m.d.sync += [crc_idx.eq(crc_idx + 1), crc_bad.eq(crc_bad | byte_bad)]
                with m.If(take & (crc_idx == CRC_BYTES - 1)):
                    with m.If(crc_bad | byte_bad):
                        m.d.sync += stats.rx_crc_errors.eq(stats.rx_crc_errors + 1)
                        error(ErrorCode.BAD_CRC, tag)
                    with m.Elif(rtype == FrameType.READ):
                        with m.If(read_bad):
                            m.d.sync += stats.rx_errors.eq(stats.rx_errors + 1)
                            error(ErrorCode.BAD_ADDRESS, tag)
                        with m.Else():
                            m.d.sync += stats.rx_frames.eq(stats.rx_frames + 1)
                            respond(FrameType.READ_DATA, [tag, addr[:8], addr[8:]], count)
                    with m.Elif(bad_addr):
                        m.d.sync += stats.rx_errors.eq(stats.rx_errors + 1)
                        error(ErrorCode.BAD_ADDRESS, tag)
                    with m.Else():
                        m.d.sync += [n_words.eq(widx), widx.eq(0), waddr.eq(addr)]
                        m.next = "EXEC_FETCH"
            # Apply the buffered write, one word per two cycles; nothing can interrupt it.
            with m.State("EXEC_FETCH"):
                m.d.comb += buf_r.addr.eq(widx)
                m.next = "EXEC_WRITE"
            with m.State("EXEC_WRITE"):
                m.d.sync += [bus.addr.eq(waddr), bus.w_data.eq(buf_r.data), bus.w_stb.eq(1),
                             widx.eq(widx + 1), waddr.eq(waddr + 1)]
                with m.If(widx + 1 == n_words):
                    m.d.sync += stats.rx_frames.eq(stats.rx_frames + 1)
                    respond(FrameType.WRITE_ACK, [tag, addr[:8], addr[8:], n_words])
                with m.Else():
                    m.next = "EXEC_FETCH"
            with m.State("RESPOND"):
                with m.If(resp_done):
                    m.d.sync += resp_req.eq(0)
                    m.next = "HUNT"

        # -- transmitter ----------------------------------------------------------------------
        K = soc.max_records_per_frame
        tcrc = Signal(32)
        tcrc_out = Signal(32)
        tcrc_idx = Signal(2)
        last_byte = Signal(8)        # sent last cycle; the CRC takes it in now
        crc_pending = Signal()
        ttype = Signal(8)
        tlen = Signal(16)
        thdr = Signal(data.ArrayLayout(8, 4))
        hdr_left = Signal(range(5))  # header bytes still to send
        hdr_pos = Signal(2)
        tleft = Signal(16)           # payload bytes still to send
        from_bus = Signal()
        ebyte_left = Signal(range(max(rb, 4) + 1))   # bytes of the element still to send
        eidx = Signal(8)
        sr = Signal(max(WORD_BITS, rb * 8))
        record = Signal(rec_bits)
        is_resp = Signal()
        bus_base = Signal(ADDR_WIDTH)
        sent = Signal()
        m.d.comb += sent.eq(tx.valid & tx.ready)
        # Event frame size, from the FIFO level one and two cycles ago (the level only
        # falls when this transmitter pops, and it waits two cycles after every frame, so
        # the records counted are always there).
        n_level = Signal(8)
        n_events = Signal(8)
        events_len = Signal(16)
        m.d.sync += [
            n_level.eq(Mux(self.event_level > K, K, self.event_level)),
            n_events.eq(n_level),
            events_len.eq(1 + n_level * rb),
        ]

        with m.If(crc_pending):
            m.d.sync += tcrc.eq(_crc32_update(tcrc, last_byte))
        m.d.sync += [crc_pending.eq(0), last_byte.eq(tx.payload)]

        def take_byte():
            m.d.sync += crc_pending.eq(1)

        with m.FSM(name="tx_fsm"):
            with m.State("SETTLE0"):
                m.next = "SETTLE1"
            with m.State("SETTLE1"):
                m.next = "IDLE"
            with m.State("IDLE"):
                with m.If(resp_req & ~resp_done):
                    m.d.sync += [
                        is_resp.eq(1), ttype.eq(resp_type), thdr.eq(resp_hdr),
                        hdr_left.eq(resp_hdr_len), eidx.eq(resp_n), from_bus.eq(1),
                        tlen.eq(resp_len), bus_base.eq(Cat(resp_hdr[1], resp_hdr[2])),
                    ]
                    m.next = "SYNC"
                with m.Elif(n_events != 0):
                    m.d.sync += [
                        is_resp.eq(0), ttype.eq(FrameType.EVENTS), thdr[0].eq(n_events),
                        hdr_left.eq(1), eidx.eq(n_events), from_bus.eq(0),
                        tlen.eq(events_len),
                        stats.tx_event_frames.eq(stats.tx_event_frames + 1),
                        stats.tx_records.eq(stats.tx_records + n_events),
                    ]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(SYNC)]
                with m.If(sent):
                    m.d.sync += tcrc.eq(CRC_INIT)
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(ttype)]
                with m.If(sent):
                    take_byte()
                    m.next = "LEN0"
            with m.State("LEN0"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(tlen[:8])]
                with m.If(sent):
                    take_byte()
                    m.next = "LEN1"
            with m.State("LEN1"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(tlen[8:])]
                with m.If(sent):
                    take_byte()
                    m.d.sync += [tleft.eq(tlen), hdr_pos.eq(0)]
                    m.next = "HDR"
            with m.State("HDR"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(thdr[hdr_pos])]
                with m.If(sent):
                    take_byte()
                    m.d.sync += [hdr_pos.eq(hdr_pos + 1), hdr_left.eq(hdr_left - 1),
                                 tleft.eq(tleft - 1)]
                    with m.If(tleft == 1):
                        m.next = "CRC_PREP"
                    with m.Elif(hdr_left == 1):
                        m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += ebyte_left.eq(Mux(from_bus, 4, rb))
                with m.If(from_bus):
                    m.d.sync += [bus.addr.eq(bus_base), bus.r_stb.eq(1),
                                 bus_base.eq(bus_base + 1)]
                    m.next = "LOAD_WAIT0"
                with m.Else():
                    m.d.comb += self.events.ready.eq(1)
                    with m.If(self.events.valid):
                        # Straight into a register: the FIFO's block RAM is slow to output.
                        m.d.sync += record.eq(self.events.payload.as_value())
                        m.next = "LOAD_RECORD"
            with m.State("LOAD_RECORD"):
                m.d.sync += sr.eq(record)
                m.next = "ELEM"
            # The bus answers BUS_READ_LATENCY cycles after it sees r_stb, which is
            # registered here: wait for it.
            for i in range(BUS_READ_LATENCY):
                with m.State(f"LOAD_WAIT{i}"):
                    m.next = f"LOAD_WAIT{i + 1}" if i + 1 < BUS_READ_LATENCY else "LOAD_BUS"
            with m.State("LOAD_BUS"):
                m.d.sync += sr.eq(bus.r_data)
                m.next = "ELEM"
            with m.State("ELEM"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(sr[:8])]
                with m.If(sent):
                    take_byte()
                    m.d.sync += [sr.eq(sr >> 8), ebyte_left.eq(ebyte_left - 1),
                                 tleft.eq(tleft - 1)]
                    with m.If(tleft == 1):
                        m.next = "CRC_PREP"
                    with m.Elif(ebyte_left == 1):
                        m.next = "LOAD"
            with m.State("CRC_PREP"):
                # The last payload byte goes into the CRC in this cycle.
                m.d.sync += [tcrc_out.eq(_crc32_update(tcrc, last_byte) ^ 0xFFFFFFFF),
                             tcrc_idx.eq(0)]
                m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(tcrc_out[:8])]
                with m.If(sent):
                    m.d.sync += [tcrc_out.eq(tcrc_out >> 8), tcrc_idx.eq(tcrc_idx + 1)]
                    with m.If(tcrc_idx == CRC_BYTES - 1):
                        m.d.comb += resp_done.eq(is_resp)
                        m.next = "SETTLE0"
        assert rec_bits <= len(sr)
        return m
