"""The SoC in Amaranth's simulator: behind its UART, a host bit-banging 3 Mbaud frames at a
12 MHz clock reads the identification block and a byte with a bad stop bit is counted; with
the link in its own clock domain, ticked only when busy, it behaves exactly the same."""

from amaranth.hdl import Cat, ClockDomain, Module
from amaranth.sim import Simulator

from heraldry.gateware.protocol import FrameType
from heraldry.gateware.regmap import (CONTROL_RESEED, CONTROL_SNAPSHOT, CONTROL_START, ID_WORDS,
                                      MAGIC, SocParameters)
from heraldry.gateware.soc import HeraldSoC, UartHeraldSoC
from heraldry.host.device import DeviceInfo
from heraldry.host.framing import FrameDecoder, encode_frame


def line_bits(data, divisor, stop=1):
    for byte in data:
        for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
            yield from [bit] * divisor


def test_identify_over_uart():
    params = SocParameters(clk_freq=12_000_000)
    dut = UartHeraldSoC(params)
    assert dut.divisor == 4
    regmap = dut.soc.regmap
    request = encode_frame(FrameType.READ, bytes((1, 0, 0, ID_WORDS)))
    lost_stat = encode_frame(FrameType.READ, bytes((2, regmap["link.rx_overruns"].addr, 0, 1)))
    decoder = FrameDecoder()
    responses = []

    async def bench(ctx):
        bits = list(line_bits(request, 4)) + [1] * 40 + list(line_bits(b"\x00", 4, stop=0)) \
            + [1] * 40 + list(line_bits(lost_stat, 4))
        # Receive the device's line like a host: mid-bit samples after each start edge.
        level, t, rx_state = 1, 0, None
        samples = []
        for t in range(len(bits) + 12000):
            ctx.set(dut.rx_pin, bits[t] if t < len(bits) else 1)
            _, _, tx = await ctx.tick().sample(dut.tx_pin)
            samples.append(tx)
        i, out = 0, bytearray()
        while i < len(samples):
            if samples[i] == 0:
                byte = sum(samples[i + 2 + 4 * (k + 1)] << k for k in range(8))
                assert samples[i + 2 + 36] == 1        # stop bit
                out.append(byte)
                i += 2 + 36
            else:
                i += 1
        responses.extend(decoder.feed(bytes(out))[0])

    sim = Simulator(dut)
    sim.add_clock(1 / 12e6)
    sim.add_testbench(bench)
    sim.run()
    assert decoder.stats.errors == 0
    (identify, overruns) = responses
    assert identify[0] == FrameType.READ_DATA
    words = [int.from_bytes(identify[1][3 + 4 * i:7 + 4 * i], "little") for i in range(ID_WORDS)]
    assert words[0] == MAGIC
    info = DeviceInfo.from_words(words)
    assert info.clk_freq == 12_000_000
    assert overruns[0] == FrameType.READ_DATA
    assert int.from_bytes(overruns[1][3:7], "little") == 1      # the framing error


def _write(regmap, tag, name, values):
    addr = regmap[name].addr
    return encode_frame(FrameType.WRITE, bytes((tag, addr & 0xFF, addr >> 8)) + b"".join(
        v.to_bytes(4, "little") for v in values))


def _read(regmap, tag, name, count):
    addr = regmap[name].addr
    return encode_frame(FrameType.READ, bytes((tag, addr & 0xFF, addr >> 8, count)))


def test_link_domain_ticked_only_when_busy():
    """The same session on two SoCs, cycle by cycle: one with the link in the core's clock
    domain, one whose link domain ticks only when ``link_busy`` was high. Their byte
    streams must be identical, and the second one's link must have skipped most cycles."""
    params = SocParameters(fifo_depth=8, max_records_per_frame=3)
    whole = HeraldSoC(params)
    gated = HeraldSoC(params, link_domain="link")
    regmap = whole.regmap
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.domains.link = link = ClockDomain()
    m.submodules.whole = whole
    m.submodules.gated = gated

    thresholds = [0x4000_0000, 0x8000_0000, 0xC000_0000]
    session = [
        _write(regmap, 1, "config.period", [24, 2, 6, 0, 0]),
        _write(regmap, 2, "table", [0, 1, 0, 0, 2]),
        _write(regmap, 3, "config.max_attempts", [12]),
        _write(regmap, 4, "config.diagnostic", [1]),
        _write(regmap, 5, "emulator.enable", [1, 3, 2, *thresholds]),
        _write(regmap, 6, "control", [CONTROL_RESEED]),
        _write(regmap, 7, "control", [CONTROL_START]),
        b"\x00\xa5\x02\x07",                                  # garbage, a cut-off frame
        _read(regmap, 8, "status.running", 5),
        _write(regmap, 9, "control", [CONTROL_SNAPSHOT]),
        _read(regmap, 10, "counters.attempts", 12),
        _read(regmap, 11, "link.rx_frames", 9),
    ]
    stream_in = b"".join(session)
    out = {"whole": bytearray(), "gated": bytearray()}
    ticks = {"link": 0, "cycles": 0}

    async def bench(ctx):
        clocks = Cat(sync.clk, link.clk)
        position = 0
        for soc in (whole, gated):
            ctx.set(soc.tx.ready, 1)
        for cycle in range(20_000):
            valid = position < len(stream_in)
            for soc in (whole, gated):
                ctx.set(soc.rx.valid, valid)
                ctx.set(soc.rx.payload, stream_in[position] if valid else 0)
            # Random back-pressure on the transmit side, the same for both.
            ctx.set(whole.tx.ready, (cycle * 7919) % 5 != 0)
            ctx.set(gated.tx.ready, (cycle * 7919) % 5 != 0)
            busy = ctx.get(gated.link_busy)
            sample = [ctx.get(s) for soc in (whole, gated)
                      for s in (soc.rx.ready, soc.tx.valid, soc.tx.payload, soc.tx.ready)]
            assert sample[:4] == sample[4:], f"cycle {cycle}: {sample}"
            if valid and sample[0]:
                position += 1
            if sample[1] and sample[3]:
                out["whole"].append(sample[2])
                out["gated"].append(sample[6])
            ctx.set(clocks, 0)
            await ctx.delay(1e-8)
            ctx.set(clocks, 0b01 | (0b10 if busy else 0))
            await ctx.delay(1e-8)
            ticks["link"] += busy
            ticks["cycles"] += 1

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert out["whole"] == out["gated"]
    decoder = FrameDecoder()
    responses, _ = decoder.feed(bytes(out["gated"]))
    assert decoder.stats.errors == 0 and decoder.stats.records > 0
    # The cut-off frame swallows the read after it: that one is answered with an error.
    assert [r[0] for r in responses] == [FrameType.WRITE_ACK] * 7 + [
        FrameType.ERROR, FrameType.WRITE_ACK, FrameType.READ_DATA, FrameType.READ_DATA]
    assert ticks["link"] < ticks["cycles"] // 10
