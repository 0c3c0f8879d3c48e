"""xoroshiro128** pseudo-random generator in gateware (Blackman & Vigna): 64 bits per step,
period 2**128 - 1, passes BigCrush; the multiplications are by 5 and 9, so it needs only
shifts and adders. The output scrambler is pipelined over two registers, one adder each, so
that no path holds more than one 64-bit adder and consumers start from a flip-flop.

Half the state of xoshiro256** for the same output width: on the iCE40 each generator is
about 200 logic cells smaller, and a simulator updates two words per step instead of four."""

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Xoroshiro128StarStar", "seed_state", "WARMUP_STEPS"]

MASK64 = (1 << 64) - 1
#: Per-instance constants (digits of pi and e): the first state word is the instance's first
#: constant whatever the seed (non-zero, so the state is never all zero), the second the seed
#: XOR the second constant (distinct seeds, distinct states).
SEED_CONSTANTS = (
    (0x243F6A8885A308D3, 0x13198A2E03707344),
    (0xA4093822299F31D0, 0x082EFA98EC4E6C89),
    (0x452821E638D01377, 0xBE5466CF34E90C6C),
    (0xC0AC29B7C97C50DD, 0x3F84D5B5B5470917),
    (0x2B7E151628AED2A6, 0xABF7158809CF4F3C),
)
#: Steps taken after a reseed before the first output is used, to spread the seed.
WARMUP_STEPS = 16


def seed_state(seed, instance):
    """The 128-bit state loaded for ``seed`` in generator ``instance`` (before warm-up)."""
    c0, c1 = SEED_CONSTANTS[instance]
    return (c0, (seed & MASK64) ^ c1)


class Xoroshiro128StarStar(wiring.Component):
    """One xoroshiro128** generator with a registered, two-stage output.

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
        A register: xoroshiro128**'s output of the state two steps back.
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
        c0, c1 = SEED_CONSTANTS[self.instance]
        s0, s1 = (Signal(64, name=f"s{i}", init=v)
                  for i, v in enumerate(seed_state(0, self.instance)))

        # Shifts as shift operators rather than bit concatenations: the same hardware, but a
        # simulator (Verilator) then computes each as one word operation.
        def shl(value, amount):
            return (value << amount)[:64]

        def rotl(value, amount):
            return shl(value, amount) | value[64 - amount:]

        # Scrambler rotl(s0 * 5, 7) * 9, one adder per stage.
        times5 = Signal(64)
        output = Signal(64)
        m.d.comb += self.output.eq(output)
        # s1 ^= s0; s0 = rotl(s0, 24) ^ s1 ^ (s1 << 16); s1 = rotl(s1, 37).
        mixed = s1 ^ s0
        with m.If(self.step):
            with m.If(self.load):
                # The first word a constant: a synchronous set/reset, no multiplexer.
                m.d.sync += [s0.eq(c0), s1.eq(self.seed ^ Const(c1, 64))]
            with m.Else():
                m.d.sync += [s0.eq(rotl(s0, 24) ^ mixed ^ shl(mixed, 16)),
                             s1.eq(rotl(mixed, 37))]
            m.d.sync += [
                times5.eq(shl(s0, 2) + s0),
                output.eq(shl(rotl(times5, 7), 3) + rotl(times5, 7)),
            ]
        return m
