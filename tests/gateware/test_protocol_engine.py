"""The gateware protocol engine inside the SoC, driven with raw frames in Amaranth's
simulator: requests, errors, atomic writes, resynchronisation."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heraldry.gateware.protocol import ErrorCode, FrameType, _at_least
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


def test_addresses_beyond_the_map_bits_do_not_alias(link):
    """The engine drives only the address bits the map needs: a request whose address has
    higher bits set is refused whole, even where its low bits name a register."""
    base = link.regmap["config.holdoff"].addr
    link(write_req(20, base, [5]))
    bits = (link.regmap.size - 1).bit_length()
    for high in (1 << bits, 0x8000):
        assert link(write_req(21, base | high, [66])) == [
            (FrameType.ERROR, bytes((21, ErrorCode.BAD_ADDRESS)))]
        assert link(read_req(22, base | high, 1)) == [
            (FrameType.ERROR, bytes((22, ErrorCode.BAD_ADDRESS)))]
    (resp,) = link(read_req(23, base, 1))
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


def test_writes_while_a_run_is_active_are_refused_exactly():
    """A write request reaching the configuration or the table is refused whole (ERROR
    RUN_ACTIVE, counted in link.rx_refused, nothing applied) iff the core's `running` is high
    in the cycle the engine samples it, 4 cycles after the frame's last byte is taken: up
    to the run's done cycle E, and not from E + 1 on; a write right after a START is
    refused. Bytes are fed at exact cycles into the SoC in Amaranth's simulator."""
    from amaranth.sim import Simulator

    from heraldry.gateware.soc import HeraldSoC
    soc = HeraldSoC(SOC)
    regmap = soc.regmap
    holdoff = regmap["config.holdoff"].addr
    control = regmap["control"].addr
    table = regmap["table"].addr
    timeout = 200
    setup = [write_req(1, regmap["config.period"].addr, [20]),
             write_req(2, regmap["config.timeout"].addr, [timeout]),
             write_req(3, holdoff, [0])]
    decoder = FrameDecoder()
    log = {"running": [], "responses": []}

    async def bench(ctx):
        ctx.set(soc.tx.ready, 1)
        t = 0

        async def tick():
            nonlocal t
            tx_valid, tx_byte, running = (ctx.get(soc.tx.valid), ctx.get(soc.tx.payload),
                                          ctx.get(soc.running))
            log["running"].append(running)
            await ctx.tick()
            t += 1
            if tx_valid:
                responses, _ = decoder.feed(bytes((tx_byte,)))
                log["responses"] += responses

        async def send(frame, at=None):
            """Feed ``frame`` from cycle ``at`` (or now); returns the cycle its last byte
            was taken and its response."""
            while at is not None and t < at:
                await tick()
            for byte in frame:
                ctx.set(soc.rx.valid, 1)
                ctx.set(soc.rx.payload, byte)
                while not ctx.get(soc.rx.ready):
                    await tick()
                taken = t
                await tick()
            ctx.set(soc.rx.valid, 0)
            n = len(log["responses"])
            while len(log["responses"]) == n:
                await tick()
            return taken, log["responses"][-1]

        for frame in setup:
            _, (kind, _) = await send(frame)
            assert kind == FrameType.WRITE_ACK
        tag = 10
        for k, (target, value) in enumerate([(holdoff, 7), (table, 1)] * 3
                                            + [(holdoff, 9)]):
            # Run k: a START, then one write sampled at E + delta (delta = -1, 0, 1, 2 for
            # the holdoff and the table in turn; the last: right after the START).
            _, (kind, _) = await send(write_req(tag, control, [1]))
            tag += 1
            assert kind == FrameType.WRITE_ACK
            s = next(i for i in range(len(log["running"]) - 1, 0, -1)
                     if log["running"][i] and not log["running"][i - 1]) - 1
            end = s + timeout
            frame = write_req(tag, target, [value])
            if k < 6:
                delta = (-1, 0, 1, 2, -1, 1)[k]
                # One byte a cycle, but for the cycle the receiver checks the length in.
                at = end + delta - 4 - len(frame)
            else:
                at = None
            taken, response = await send(frame, at)
            log.setdefault("writes", []).append((k, target, taken + 4 - end,
                                                 log["running"][taken + 4], response, tag))
            tag += 1
            while t < end + 5:
                await tick()
        (kind, payload) = (await send(read_req(tag, holdoff, 1)))[1]
        log["holdoff"] = words(payload)[0]
        (kind, payload) = (await send(read_req(tag + 1, regmap["link.rx_refused"].addr, 1)))[1]
        log["refused"] = words(payload)[0]

    sim = Simulator(soc)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    outcomes = []
    for k, target, delta, running, (kind, payload), tag in log["writes"]:
        refused = (kind, payload) == (FrameType.ERROR, bytes((tag, ErrorCode.RUN_ACTIVE)))
        applied = kind == FrameType.WRITE_ACK
        assert refused != applied and refused == bool(running), (k, delta, running)
        outcomes.append((delta if k < 6 else "after START", refused))
    assert outcomes == [(-1, True), (0, True), (1, False), (2, False), (-1, True), (1, False),
                        ("after START", True)]
    assert log["holdoff"] == 7          # from the write sampled at E + 1, not the last one
    assert log["refused"] == 4          # exactly the refused requests


def test_constant_comparison_logic_matches_the_operator():
    """_at_least (the engine's comparisons with constants, as logic) against ``>=`` for
    every 6-bit value and every bound from below zero to beyond the value's range."""
    value = Signal(6)
    bounds = range(-1, 66)
    outs = [_at_least(value, bound) for bound in bounds]
    sim = Simulator(Module())

    async def check(ctx):
        for v in range(64):
            ctx.set(value, v)
            assert [ctx.get(out) for out in outs] == [int(v >= b) for b in bounds], v
    sim.add_testbench(check)
    sim.run()
