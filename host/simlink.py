"""``sim://``: the SoC running in Amaranth's simulator, in this process.

The simulator advances only while the host waits for bytes, so the device runs as fast as
Python allows (a few thousand cycles per second) and is otherwise frozen. The detector
clicks and the ``ready`` input come from a pluggable :class:`ClickSource`, queried in blocks
of cycles; cycles are counted from the simulator's start, the numbering of the SoC's
``snapshot.start_cycle`` register, so a test can replay the same clicks into the golden model.
"""

import time

import numpy as np

from .transport import Transport

__all__ = ["ClickSource", "NoClicks", "RandomClicks", "EdgeClicks", "SimTransport",
           "click_edges"]

BLOCK = 4096


class ClickSource:
    """Detector inputs of the simulated device.

    Subclasses implement :meth:`block`; cycle numbers are absolute.
    """

    def block(self, start: int, n: int):
        """``(clicks, ready)`` for cycles ``start .. start + n - 1``: ``clicks`` an integer
        array of per-cycle bitmasks (bit c: channel c high), ``ready`` a 0/1 array."""
        raise NotImplementedError


class NoClicks(ClickSource):
    """Dark detectors, ``ready`` constant."""

    def __init__(self, ready=True):
        self.ready = int(bool(ready))

    def block(self, start, n):
        return np.zeros(n, dtype=np.int64), np.full(n, self.ready, dtype=np.int64)


def _ready_block(ready, start, n):
    if ready is None or isinstance(ready, (bool, int)):
        return np.full(n, 1 if ready is None else int(bool(ready)), dtype=np.int64)
    # A golden-model Trace: level at t is initial xor (toggles <= t odd).
    toggles = np.asarray(ready.toggles, dtype=np.int64)
    t = np.arange(start, start + n)
    return (int(ready.initial) ^ (np.searchsorted(toggles, t, side="right") & 1)).astype(
        np.int64)


class RandomClicks(ClickSource):
    """Independent one-cycle click pulses: channel c is high in a cycle with probability
    ``rate`` (per channel), reproducibly for a given ``seed`` whatever the query order.

    ``ready`` is a constant level or a :class:`heraldry.sim.golden.Trace`.
    """

    def __init__(self, n_channels, rate, seed=0, ready=True):
        self.n_channels, self.rate, self.seed, self.ready = n_channels, rate, seed, ready

    def _aligned(self, b):
        rng = np.random.default_rng([self.seed, b])
        hits = rng.random((BLOCK, self.n_channels)) < self.rate
        return (hits.astype(np.int64) << np.arange(self.n_channels)).sum(axis=1)

    def block(self, start, n):
        first, last = start // BLOCK, (start + n - 1) // BLOCK
        clicks = np.concatenate([self._aligned(b) for b in range(first, last + 1)])
        offset = start - first * BLOCK
        return clicks[offset:offset + n], _ready_block(self.ready, start, n)


class EdgeClicks(ClickSource):
    """Clicks at given cycles: ``edges`` is a sequence of ``(cycle, channel)``; each makes
    the channel high for one cycle."""

    def __init__(self, edges, ready=True):
        self.edges = sorted(edges)
        self._cycles = np.array([t for t, _ in self.edges], dtype=np.int64)
        self._masks = np.array([1 << c for _, c in self.edges], dtype=np.int64)
        self.ready = ready

    def block(self, start, n):
        clicks = np.zeros(n, dtype=np.int64)
        lo, hi = np.searchsorted(self._cycles, [start, start + n])
        np.bitwise_or.at(clicks, self._cycles[lo:hi] - start, self._masks[lo:hi])
        return clicks, _ready_block(self.ready, start, n)


def click_edges(source: ClickSource, start: int, stop: int, n_channels: int):
    """Rising edges ``[(cycle, channel), ...]`` of ``source`` in cycles ``start .. stop - 1``,
    sorted: what the core sees as clicks (the golden model's ``clicks`` argument)."""
    begin = max(start - 1, 0)
    clicks, _ = source.block(begin, stop - begin)
    edges = []
    for c in range(n_channels):
        level = (clicks >> c) & 1
        prev = np.concatenate(([0 if begin == 0 else level[0]], level[:-1]))
        rise = np.flatnonzero(level & (1 - prev)) + begin
        edges += [(int(t), c) for t in rise if t >= start]
    return sorted(edges)


class SimTransport(Transport):
    """The SoC in Amaranth's simulator.

    Parameters
    ----------
    params : SocParameters
    click_source : ClickSource, optional
        Default: no clicks, ``ready`` high.
    wires : sequence of (int, int), optional
        ``(output, channel)`` pairs: trigger output ``trig[output]`` wired to detector input
        ``clicks[channel]`` on a board, as for the loopback self-test. The core sees the
        pulse ``params.output_latency + params.frontend_latency`` cycles after it drives it
        (the board's output registers, the wire, its IO register and synchroniser), ORed
        with the click source's clicks.
    chunk : int
        Cycles simulated per step while waiting for bytes.

    Attributes
    ----------
    cycle : int
        Clock cycles simulated so far.
    """

    response_timeout = 60.0

    def __init__(self, params, click_source=None, wires=(), chunk=256):
        from collections import deque

        from amaranth.sim import Simulator

        from ..gateware.soc import HeraldSoC

        core = params.core
        for output, channel in wires:
            if not (0 <= output < core.n_outputs and 0 <= channel < core.n_channels):
                raise ValueError(f"wires: ({output}, {channel}) names trig[{output}] -> "
                                 f"clicks[{channel}]; the device has {core.n_outputs} "
                                 f"outputs and {core.n_channels} channels")
        wire_delay = params.output_latency + params.frontend_latency
        if wires and wire_delay < 1:
            raise ValueError(f"wires: output_latency + frontend_latency is {wire_delay}; a "
                             f"wire needs at least 1 cycle (a board's registers)")
        self.url = "sim://"
        self.params = params
        self.click_source = click_source or NoClicks()
        self.chunk = chunk
        self.soc = soc = HeraldSoC(params)
        self.cycle = 0
        self._to_device = bytearray()
        self._from_device = bytearray()
        self._closed = False
        sim = self._sim = Simulator(soc)
        sim.add_clock(1 / params.clk_freq)

        async def bench(ctx):
            ctx.set(soc.tx.ready, 1)
            block_start = block_end = 0
            clicks = ready = None
            cur_clicks = cur_ready = cur_valid = cur_byte = -1
            # What the wires bring back in cycles t .. t + wire_delay - 1.
            returning = deque([0] * wire_delay)
            t = 0
            while True:
                if t >= block_end:
                    clicks, ready = self.click_source.block(t, BLOCK)
                    clicks, ready = clicks.tolist(), ready.tolist()
                    block_start, block_end = t, t + BLOCK
                c, r = clicks[t - block_start], ready[t - block_start]
                if wires:
                    c |= returning.popleft()
                if c != cur_clicks:
                    ctx.set(soc.clicks, c)
                    cur_clicks = c
                if r != cur_ready:
                    ctx.set(soc.ready, r)
                    cur_ready = r
                valid = 1 if self._to_device else 0
                if valid != cur_valid:
                    ctx.set(soc.rx.valid, valid)
                    cur_valid = valid
                if valid and self._to_device[0] != cur_byte:
                    cur_byte = self._to_device[0]
                    ctx.set(soc.rx.payload, cur_byte)
                _, _, rx_ready, tx_valid, tx_byte, trig = await ctx.tick().sample(
                    soc.rx.ready, soc.tx.valid, soc.tx.payload, soc.trig)
                if wires:
                    back = 0        # two outputs wired to one channel drive the same bit
                    for output, channel in wires:
                        if trig >> output & 1:
                            back |= 1 << channel
                    returning.append(back)
                if valid and rx_ready:
                    del self._to_device[0]
                if tx_valid:
                    self._from_device.append(tx_byte)
                t += 1
                self.cycle = t

        sim.add_testbench(bench, background=True)

    def run_cycles(self, n):
        """Advance the device by ``n`` clock cycles."""
        target = self.cycle + n
        while self.cycle < target:
            self._sim.advance()

    def write(self, data):
        self._to_device += data

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while not self._from_device:
            self.run_cycles(self.chunk)
            if time.monotonic() >= deadline:
                break
        data = bytes(self._from_device)
        self._from_device.clear()
        return data

    def close(self):
        self._closed = True
