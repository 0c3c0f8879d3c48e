"""cocotb bench of the UART PHY: bytes both ways at 3 Mbaud with the far end's baud rate off
by a given mismatch, plus framing errors and overruns."""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge, Timer

CLK_PS = int(os.environ.get("UART_CLK_PS", "20834"))      # even: cocotb halves it
BAUD = float(os.environ.get("UART_BAUD", "3e6"))
MISMATCH = float(os.environ.get("UART_MISMATCH", "0"))
#: The far end's bit time: its baud rate is BAUD * (1 + MISMATCH).
BIT_PS = round(1e12 / (BAUD * (1 + MISMATCH)))

PATTERN = bytes([0x00, 0xFF, 0x55, 0xAA, 0xA5, 0x01, 0x80]) + bytes(
    random.Random(1).randrange(256) for _ in range(57))


async def setup(dut):
    Clock(dut.clk, CLK_PS, unit="ps").start()
    dut.rst.value = 1
    dut.rx_pin.value = 1
    dut.tx__valid.value = 0
    dut.tx__payload.value = 0
    dut.rx__ready.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)


async def line_send(dut, data, stop_bits=None):
    """Bit-bang ``data`` into rx_pin at the far end's rate, back to back."""
    for i, byte in enumerate(data):
        stop = 1 if stop_bits is None else stop_bits[i]
        for bit in [0] + [(byte >> k) & 1 for k in range(8)] + [stop]:
            dut.rx_pin.value = bit
            await Timer(BIT_PS, unit="ps")
    dut.rx_pin.value = 1


class StreamSink:
    def __init__(self, dut):
        self.dut, self.bytes, self.lost = dut, [], 0
        cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        while True:
            # Mid-cycle: the values the next rising edge will act on.
            await FallingEdge(dut.clk)
            await ReadOnly()
            if dut.rx__valid.value and dut.rx__ready.value:
                self.bytes.append(int(dut.rx__payload.value))
            if dut.lost.value:
                self.lost += 1


class LineReceiver:
    """The far end's receiver: samples tx_pin at the middle of each of its own bit times."""

    def __init__(self, dut):
        self.dut, self.bytes, self.framing_errors = dut, [], 0
        cocotb.start_soon(self._run())

    async def _run(self):
        dut = self.dut
        while True:
            await FallingEdge(dut.tx_pin)
            await Timer(BIT_PS // 2, unit="ps")
            assert int(dut.tx_pin.value) == 0, "start bit glitch"
            byte = 0
            for k in range(8):
                await Timer(BIT_PS, unit="ps")
                byte |= int(dut.tx_pin.value) << k
            await Timer(BIT_PS, unit="ps")
            if int(dut.tx_pin.value) != 1:
                self.framing_errors += 1
            self.bytes.append(byte)


async def stream_send(dut, data):
    for byte in data:
        dut.tx__valid.value = 1
        dut.tx__payload.value = byte
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            if dut.tx__ready.value:
                break
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
    dut.tx__valid.value = 0


@cocotb.test()
async def receive_at_mismatch(dut):
    await setup(dut)
    sink = StreamSink(dut)
    await line_send(dut, PATTERN)
    await Timer(2 * BIT_PS, unit="ps")
    assert bytes(sink.bytes) == PATTERN, (MISMATCH, sink.bytes[:8])
    assert sink.lost == 0


@cocotb.test()
async def transmit_at_mismatch(dut):
    await setup(dut)
    receiver = LineReceiver(dut)
    await stream_send(dut, PATTERN)
    await Timer(12 * BIT_PS, unit="ps")
    assert bytes(receiver.bytes) == PATTERN, (MISMATCH, receiver.bytes[:8])
    assert receiver.framing_errors == 0


@cocotb.test()
async def framing_error_and_overrun_are_counted(dut):
    await setup(dut)
    sink = StreamSink(dut)
    # A byte without its stop bit is lost (and counted); after the line idles, the next
    # one arrives.
    await line_send(dut, b"\x3c", stop_bits=[0])
    await Timer(2 * BIT_PS, unit="ps")
    await line_send(dut, b"\x5a")
    await Timer(12 * BIT_PS, unit="ps")
    assert sink.bytes == [0x5A] and sink.lost == 1
    # Nobody takes the first byte: the second and third are lost, the first is kept.
    dut.rx__ready.value = 0
    await line_send(dut, b"\x11\x22\x33")
    await Timer(2 * BIT_PS, unit="ps")
    await FallingEdge(dut.clk)
    dut.rx__ready.value = 1
    await ClockCycles(dut.clk, 4)
    assert sink.bytes == [0x5A, 0x11] and sink.lost == 3
