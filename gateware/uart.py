"""UART PHY: 8N1, baud rate set by a clock divisor, byte streams on the inside.

At 3 Mbaud the divisor is 16 from a 48 MHz clock (12 MHz x 4) and 4 from 12 MHz itself;
the receiver samples each bit at its middle, measured from the start bit's falling edge,
so it tolerates a few percent of baud mismatch (the bench checks +-2 %).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "UART", "divisor_for"]


def divisor_for(clk_freq, baud):
    """Clock cycles per bit, rounded; raises if the rate error would exceed 1 %."""
    divisor = round(clk_freq / baud)
    if divisor < 4:
        raise ValueError(f"{clk_freq} Hz is too slow for {baud} baud: need at least 4 cycles "
                         f"per bit")
    error = abs(clk_freq / divisor / baud - 1)
    if error > 0.01:
        raise ValueError(f"{clk_freq} Hz / {divisor} = {clk_freq / divisor:.0f} baud is "
                         f"{error:.1%} off {baud}")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; a byte is taken when the line is idle.
    tx : Out(1)
        The line, idle high.
    """

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        # Bit time counted down to zero: no comparison with the divisor.
        timer = Signal(range(self.divisor))
        bits = Signal(10)          # stop, data[7:0], start; shifted out LSB first
        busy = Signal()
        remaining = Signal(range(11))
        m.d.comb += self.data.ready.eq(~busy)
        with m.If(~busy):
            with m.If(self.data.valid):
                m.d.sync += [bits.eq((1 << 9) | (self.data.payload << 1)), remaining.eq(10),
                             timer.eq(self.divisor - 1), busy.eq(1)]
        with m.Else():
            m.d.sync += self.tx.eq(bits[0])
            with m.If(timer == 0):
                m.d.sync += [timer.eq(self.divisor - 1), bits.eq(bits >> 1),
                             remaining.eq(remaining - 1), busy.eq(remaining != 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        with m.If(~busy):
            m.d.sync += self.tx.eq(1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver with a 2-flop synchroniser on the line.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Attributes
    ----------
    rx : In(1)
        The line (asynchronous).
    data : Out(stream.Signature(8))
        Received bytes. There is no flow control on a UART: a byte completed while the
        previous one is still waiting replaces nothing and is counted as lost.
    lost : Out(1)
        Strobe: a byte was lost (overrun, or no stop bit: framing error).
    """

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "lost": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        divisor = self.divisor
        rx = Signal(init=1)
        # The line is asynchronous to our clock.
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        # Counted down to zero: no comparison with the divisor.
        timer = Signal(range(divisor))
        shift = Signal(8)
        count = Signal(range(8))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq((divisor >> 1) - 1)
                    m.next = "START"
            with m.State("START"):
                # Middle of the start bit: still low, or it was a glitch.
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), count.eq(0)]
                    with m.If(rx):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(divisor - 1), shift.eq(Cat(shift[1:], rx)),
                                 count.eq(count + 1)]
                    with m.If(count == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    # Back to IDLE in the middle of the stop bit, so that a sender running
                    # fast still finds us waiting for its next start bit.
                    m.next = "IDLE"
                    with m.If(rx & ~(self.data.valid & ~self.data.ready)):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    with m.Else():
                        m.d.comb += self.lost.eq(1)
                        with m.If(~rx):
                            # Framing error: wait for the line to go idle again.
                            m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UART(wiring.Component):
    """Transmitter and receiver sharing one divisor.

    Parameters
    ----------
    divisor : int

    Attributes
    ----------
    rx_pin : In(1)
    tx_pin : Out(1)
    rx : Out(stream.Signature(8))
        Bytes received from the line.
    tx : In(stream.Signature(8))
        Bytes to send.
    lost : Out(1)
        A received byte was lost (see :class:`UARTRx`).
    """

    def __init__(self, divisor):
        self._divisor = divisor
        super().__init__({
            "rx_pin": In(1, init=1),
            "tx_pin": Out(1, init=1),
            "rx": Out(stream.Signature(8)),
            "tx": In(stream.Signature(8)),
            "lost": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self._divisor)
        m.submodules.tx = tx = UARTTx(self._divisor)
        m.d.comb += [rx.rx.eq(self.rx_pin), self.tx_pin.eq(tx.tx), self.lost.eq(rx.lost)]
        wiring.connect(m, rx.data, wiring.flipped(self.rx))
        wiring.connect(m, wiring.flipped(self.tx), tx.data)
        return m
