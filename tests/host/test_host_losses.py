"""Nothing silent: device-side drops and damaged event frames show up as counts on the
result and as a LinkWarning."""

import pytest

from heraldry.gateware.regmap import CONTROL_START
from heraldry.host import Config, Controller, LinkWarning
from heraldry.host.framing import FrameType, encode_frame
from heraldry.host.simlink import RandomClicks


class CorruptEventFrames:
    """Wraps a transport; flips one byte inside the first ``n`` event frames it sees after
    ``armed`` is set (only event frames: requests and their responses stay intact)."""

    def __init__(self, inner, n):
        self.inner, self.n, self.armed, self.hit = inner, n, False, 0
        self.url, self.response_timeout = inner.url, inner.response_timeout

    def write(self, data):
        self.inner.write(data)

    def read(self, timeout):
        data = bytearray(self.inner.read(timeout))
        i = data.find(b"\xa5\x90") if self.armed else -1
        if i >= 0 and self.hit < self.n and i + 12 < len(data):
            data[i + 12] ^= 0x10          # inside the first record of the frame
            self.hit += 1
        return bytes(data)

    def close(self):
        self.inner.close()


def test_fifo_overflow_is_counted_and_warned():
    # A 4-record FIFO and a record almost every attempt of 10 cycles: the link (one byte
    # per cycle, 33 bytes per record) cannot keep up.
    source = RandomClicks(2, 0.3, seed=5)
    with Controller.open("sim://?fifo=4&frame=2", click_source=source) as ctl:
        ctl.configure(Config(period_ns=100, windows_ns=[(0, 60)], diagnostic=True))
        before = ctl.status().next_seq
        with pytest.warns(LinkWarning, match="device_drops"):
            result = ctl.run(attempts=120)
        produced = ctl.status().next_seq - before
        link = result.link
        assert link.device_drops == result.counters.dropped_records > 0
        # Dropped records consumed sequence numbers: the gaps are exactly the drops.
        assert link.seq_gaps == link.device_drops
        assert link.link_lost == 0 and link.crc_errors == 0
        # Every record the core produced was either received or counted as dropped.
        assert len(result.records) + link.device_drops == produced
        assert produced > 60


def test_corrupted_event_frames_are_counted_and_warned():
    source = RandomClicks(2, 0.05, seed=9)
    with Controller.open("sim://?frame=1", click_source=source) as ctl:
        ctl.configure(Config(period_ns=300, windows_ns=[(0, 150)], diagnostic=True))
        ctl.transport = CorruptEventFrames(ctl.transport, n=2)
        ctl.transport.armed = True
        with pytest.warns(LinkWarning, match="crc_errors"):
            result = ctl.run(attempts=60)
        link = result.link
        assert ctl.transport.hit == 2
        assert link.crc_errors == 2
        # One record per frame: two records lost on the link, seen as gaps.
        assert link.link_lost == 2 and link.seq_gaps == 2
        assert link.device_drops == 0


class LoseStartAck:
    """Wraps a transport; removes the acknowledgement of the first START from the byte
    stream, as a noisy link would, and counts the START requests sent."""

    def __init__(self, inner, control_addr, response_timeout):
        self.inner, self.control_addr = inner, control_addr
        self.url, self.response_timeout = inner.url, response_timeout
        self.starts = self.lost = 0
        self.ack = None
        self.held = bytearray()

    def write(self, data):
        # WRITE: SYNC TYPE LEN[2] TAG ADDR[2] WORD[4] CRC[4]
        if (data[1] == FrameType.WRITE and len(data) == 15
                and int.from_bytes(data[5:7], "little") == self.control_addr
                and int.from_bytes(data[7:11], "little") & CONTROL_START):
            self.starts += 1
            if self.starts == 1:
                self.ack = encode_frame(FrameType.WRITE_ACK, data[4:7] + b"\x01")
        self.inner.write(data)

    def read(self, timeout):
        self.held += self.inner.read(timeout)
        if self.ack is not None:
            i = self.held.find(self.ack)
            if i < 0:
                # Hold back what could be the start of the acknowledgement.
                keep = min(len(self.held), len(self.ack) - 1)
                out = bytes(self.held[:len(self.held) - keep])
                del self.held[:len(self.held) - keep]
                return out
            del self.held[i:i + len(self.ack)]
            self.ack = None
            self.lost += 1
        out = bytes(self.held)
        self.held.clear()
        return out

    def close(self):
        self.inner.close()


def test_a_lost_start_ack_does_not_start_a_second_run():
    # A 50-attempt run ends long before the host gives up waiting for START's
    # acknowledgement; sending START again would start a second run.
    with Controller.open("verilator://") as ctl:
        ns = 1e9 / ctl.device.clk_freq
        ctl.configure(Config(period_ns=100 * ns, windows_ns=[(40 * ns, 8 * ns)],
                             max_attempts=50))
        runs = ctl.status().runs
        ctl.transport = lossy = LoseStartAck(ctl.transport, ctl.regmap["control"].addr,
                                             response_timeout=0.5)
        result = ctl.run()
        assert lossy.lost == 1 and lossy.starts == 1
        assert ctl.lost_acks == 1 and ctl.request_retries == 0
        assert ctl.status().runs == runs + 1
        assert result.counters.attempts == 50
