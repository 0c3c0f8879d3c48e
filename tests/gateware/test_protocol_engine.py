"""The gateware protocol engine inside the SoC, driven with raw frames in Amaranth's
simulator: requests, errors, atomic writes, resynchronisation."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heraldry.gateware.protocol import ErrorCode, FrameType
from heraldry.gateware.regmap import ID_WORDS, MAGIC, SocParameters
from heraldry.host.framing import FrameDecoder, encode_frame
from heraldry.host.simlink import SimTransport

SOC = SocParameters(max_burst=8)


@pytest.fixture(scope="module")
def link():
    transport = SimTransport(SOC)
    decoder = FrameDecoder()

    def exchange(raw, n_responses=1, max_cycles=3000):
        transport.write(raw)
        got = []
        start = transport.cycle
        while len(got) < n_responses and transport.cycle - start < max_cycles:
            responses, events = decoder.feed(transport.read(0.0))
            assert not events
            got += responses
        # Nothing more should come.
        transport.run_cycles(64)
        responses, _ = decoder.feed(transport.read(0.0))
        return got + responses

    exchange.transport = transport
    exchange.regmap = transport.soc.regmap
    exchange.decoder = decoder
    return exchange


def words(payload):
    return [int.from_bytes(payload[i:i + 4], "little") for i in range(3, len(payload), 4)]


def read_req(tag, addr, n):
    return encode_frame(FrameType.READ, bytes((tag, addr & 0xFF, addr >> 8, n)))


def write_req(tag, addr, values):
    return encode_frame(FrameType.WRITE, bytes((tag, addr & 0xFF, addr >> 8)) + b"".join(
        v.to_bytes(4, "little") for v in values))


def test_read_identification(link):
    (resp,) = link(read_req(1, 0, ID_WORDS // 3))
    assert resp[0] == FrameType.READ_DATA
    assert resp[1][:3] == bytes((1, 0, 0))
    values = words(resp[1])
    assert len(values) == ID_WORDS // 3 and values[0] == MAGIC
    assert values[5] == SOC.clk_freq


def test_write_burst_then_read_back(link):
    base = link.regmap["config.period"].addr
    (ack,) = link(write_req(2, base, [100, 10, 20, 30, 40]))
    assert ack == (FrameType.WRITE_ACK, bytes((2, base & 0xFF, base >> 8, 5)))
    (resp,) = link(read_req(3, base, 5))
    assert words(resp[1]) == [100, 10, 20, 30, 40]


def test_corrupted_write_is_rejected_whole(link):
    base = link.regmap["config.holdoff"].addr
    link(write_req(4, base, [5]))
    frame = bytearray(write_req(5, base, [77]))
    frame[6] ^= 0x40                       # inside the data word
    (err,) = link(bytes(frame))
    assert err == (FrameType.ERROR, bytes((5, ErrorCode.BAD_CRC)))
    (resp,) = link(read_req(6, base, 1))
    assert words(resp[1]) == [5]


def test_write_touching_read_only_register_is_not_applied(link):
    regmap = link.regmap
    # A writable register followed by a read-only one (the last configuration register and
    # the snapshot, in today's map).
    regs = list(regmap)
    last = next(r.addr for r, after in zip(regs, regs[1:])
                if r.access.writable and r.words == 1 and not after.access.writable
                and after.addr == r.addr + 1)
    link(write_req(7, last, [0]))
    (err,) = link(write_req(8, last, [1, 0x1234]))
    assert err == (FrameType.ERROR, bytes((8, ErrorCode.BAD_ADDRESS)))
    (resp,) = link(read_req(9, last, 1))
    assert words(resp[1]) == [0]


def test_read_beyond_map_and_bad_lengths(link):
    size = link.regmap.size
    assert link(read_req(10, size - 1, 2)) == [(FrameType.ERROR,
                                                bytes((10, ErrorCode.BAD_ADDRESS)))]
    assert link(read_req(11, 0, 0)) == [(FrameType.ERROR, bytes((11, ErrorCode.BAD_ADDRESS)))]
    assert link(read_req(12, 0, SOC.max_burst + 1)) == [
        (FrameType.ERROR, bytes((12, ErrorCode.BAD_ADDRESS)))]
    # A write longer than the write buffer: rejected at the header, tag unknown yet.
    too_long = write_req(13, link.regmap["config.period"].addr, [1] * (SOC.max_burst + 1))
    (err,) = link(too_long, max_cycles=200)
    assert err == (FrameType.ERROR, bytes((0, ErrorCode.BAD_LENGTH)))
    # The rest of that frame is hunted through; the next request works.
    (resp,) = link(read_req(14, 0, 1))
    assert words(resp[1]) == [MAGIC]
    assert link(encode_frame(0x33, b"\x01")) == [(FrameType.ERROR,
                                                  bytes((0, ErrorCode.BAD_TYPE)))]


def test_resynchronises_after_garbage(link):
    stats_addr = link.regmap["link.rx_crc_errors"].addr
    (before,) = link(read_req(15, stats_addr, 1))
    garbage = bytes(range(0, 0xA5)) + bytes(range(0xA6, 0x100))   # no SYNC in it
    truncated = read_req(16, 0, 1)[:5]                            # SYNC .. then cut off
    # The truncated frame swallows the start of the next one; its CRC fails (error
    # response), and the receiver hunts on to the request after that.
    responses = link(garbage + truncated + read_req(17, 0, 1) + read_req(18, 0, 2),
                     n_responses=2)
    assert responses[0] == (FrameType.ERROR, bytes((16, ErrorCode.BAD_CRC)))
    assert responses[-1][0] == FrameType.READ_DATA and responses[-1][1][0] == 18
    (after,) = link(read_req(19, stats_addr, 1))
    assert words(after[1])[0] - words(before[1])[0] == 1


def probe(link, tag):
    """A read of the magic number, retried like the host does: the receiver may first have
    to hunt through what garbage left it expecting. Returns the tries it took."""
    for attempt in range(6):
        responses = link(read_req(tag, 0, 1), n_responses=1, max_cycles=600)
        if (FrameType.READ_DATA, bytes((tag, 0, 0)) + MAGIC.to_bytes(4, "little")) \
                in responses:
            return attempt + 1
    raise AssertionError("the device never answered again")


def config_words(link):
    probe(link, 98)             # in step again, whatever the last example left behind
    base, n = link.regmap.span("config.")
    values = []
    for addr in range(base, base + n, SOC.max_burst):
        count = min(SOC.max_burst, base + n - addr)
        (resp,) = link(read_req(99, addr, count))
        assert resp[0] == FrameType.READ_DATA
        values += words(resp[1])
    return values


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=80),
       corruption=st.tuples(st.integers(0, 10_000), st.integers(1, 255)),
       values=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8))
def test_fuzzed_requests_never_partly_applied(link, garbage, corruption, values):
    # Nothing may change the configuration: read it once, compare after every example.
    if not hasattr(link, "config_before"):
        link.config_before = config_words(link)
    before = link.config_before
    base = link.regmap["config.period"].addr
    frame = bytearray(write_req(42, base, values))
    position, flip = corruption
    frame[position % len(frame)] ^= flip
    link(garbage + bytes(frame), n_responses=0, max_cycles=200)
    assert probe(link, 7) <= 5
    assert config_words(link) == before
