"""The SoC behind its UART in Amaranth's simulator: a host bit-banging 3 Mbaud frames at a
12 MHz clock reads the identification block; a byte with a bad stop bit is counted."""

from amaranth.sim import Simulator

from heraldry.gateware.protocol import FrameType
from heraldry.gateware.regmap import ID_WORDS, MAGIC, SocParameters
from heraldry.gateware.soc import UartHeraldSoC
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
