"""xoshiro256** pseudo-random generator in gateware (Blackman & Vigna): 64 bits per step,
period 2**256 - 1, passes BigCrush; the multiplications are by 5 and 9, so it needs only
shifts and adders. The output scrambler is pipelined over two registers, one adder each, so
that no path holds more than one 64-bit adder and consumers start from a flip-flop."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Xoshiro256StarStar", "seed_state", "WARMUP_STEPS"]

MASK64 = (1 << 64) - 1
#: Per-instance constants mixed into the 64-bit seed (digits of pi and e); with the
#: complemented word they keep the 256-bit state non-zero for every seed.
SEED_CONSTANTS = (
    (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89),
    (0x452821E638D01377, 0xBE5466CF34E90C6C, 0xC0AC29B7C97C50DD, 0x3F84D5B5B5470917),
    (0x9216D5D98979FB1B, 0xD1310BA698DFB5AC, 0x2FFD72DBD01ADFB7, 0xB8E1AFED6A267E96),
    (0xBA7C9045F12C7F99, 0x24A19947B3916CF7, 0x0801F2E2858EFC16, 0x636920D871574E69),
    (0x2B7E151628AED2A6, 0xABF7158809CF4F3C, 0x762E7160F38B4DA5, 0x6A784D9045190CFE),
)
#: Steps taken after a reseed before the first output is used, to spread the seed.
WARMUP_STEPS = 16


def _rotl(value, amount, width=64):
    return ((value << amount) | (value >> (width - amount))) & ((1 << width) - 1)


def seed_state(seed, instance):
    """The 256-bit state loaded for ``seed`` in generator ``instance`` (before warm-up)."""
    c0, c1, c2, c3 = SEED_CONSTANTS[instance]
    seed &= MASK64
    return (seed ^ c0, _rotl(seed, 17) ^ c1, (~seed & MASK64) ^ c2, _rotl(seed, 41) ^ c3)


class Xoshiro256StarStar(wiring.Component):
    """One xoshiro256** generator with a registered, two-stage output.

    Parameters
    ----------
    instance : int
        Which seed constants to use, so that generators sharing a seed differ.

    Attributes
    ----------
    seed : In(64)
    step : In(1)
        Advance the state and the output pipeline by one. Best driven from a flip-flop: it
        enables every state bit.
    load : In(1)
        With ``step``: load the state from ``seed`` instead of advancing it (the output
        pipeline still advances).
    output : Out(64)
        A register: xoshiro256**'s output of the state two steps back.
    """

    seed: In(64)
    load: In(1)
    step: In(1)
    output: Out(64)

    def __init__(self, instance=0):
        if not 0 <= instance < len(SEED_CONSTANTS):
            raise ValueError(f"instance must be 0..{len(SEED_CONSTANTS) - 1}, not {instance}")
        self.instance = instance
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        c0, c1, c2, c3 = SEED_CONSTANTS[self.instance]
        s = [Signal(64, name=f"s{i}", init=v)
             for i, v in enumerate(seed_state(0, self.instance))]

        # Shifts as shift operators rather than bit concatenations: the same hardware, but a
        # simulator (Verilator) then computes each as one word operation.
        def shl(value, amount):
            return (value << amount)[:64]

        def rotl(value, amount):
            return shl(value, amount) | value[64 - amount:]

        # Scrambler rotl(s1 * 5, 7) * 9, one adder per stage.
        times5 = Signal(64)
        output = Signal(64)
        m.d.comb += self.output.eq(output)
        # Each next word written out from the state words, without a term shared with
        # another (a rotation distributes over XOR), so that the simulator computes it only in
        # the cycles the generator steps.
        n0 = s[0] ^ s[3] ^ s[1]
        n1 = s[1] ^ s[2] ^ s[0]
        n2 = s[2] ^ s[0] ^ shl(s[1], 17)
        n3 = rotl(s[3], 45) ^ rotl(s[1], 45)
        with m.If(self.step):
            with m.If(self.load):
                seed = self.seed
                m.d.sync += [
                    s[0].eq(seed ^ Const(c0, 64)),
                    s[1].eq(rotl(seed, 17) ^ Const(c1, 64)),
                    s[2].eq(~seed ^ Const(c2, 64)),
                    s[3].eq(rotl(seed, 41) ^ Const(c3, 64)),
                ]
            with m.Else():
                m.d.sync += [s[0].eq(n0), s[1].eq(n1), s[2].eq(n2), s[3].eq(n3)]
            m.d.sync += [
                times5.eq(shl(s[1], 2) + s[1]),
                output.eq(shl(rotl(times5, 7), 3) + rotl(times5, 7)),
            ]
        return m
