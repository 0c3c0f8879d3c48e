"""Host side of the framed byte protocol (format: :mod:`heraldry.gateware.protocol`).

:func:`encode_frame` builds a frame; :class:`FrameDecoder` turns an arbitrary byte stream
into intact frames, resynchronising after garbage and counting everything it throws away.
The decoder's loop runs once per frame, never once per record: event frames carry up to
``max_records_per_frame`` records whose bytes are handed on in one piece.
"""

from binascii import crc_hqx
from dataclasses import dataclass, fields

from ..gateware.protocol import CRC_INIT, SYNC, ErrorCode, FrameType

__all__ = ["encode_frame", "FrameDecoder", "DecoderStats", "FrameLimits", "FrameType",
           "ErrorCode", "SYNC"]


def encode_frame(frame_type: int, payload: bytes = b"") -> bytes:
    """One complete frame."""
    body = bytes((frame_type, len(payload) & 0xFF, len(payload) >> 8)) + bytes(payload)
    crc = crc_hqx(body, CRC_INIT)
    return bytes((SYNC,)) + body + bytes((crc & 0xFF, crc >> 8))


@dataclass
class FrameLimits:
    """What a valid device-to-host frame can look like. Before the device is identified the
    record size is unknown (``record_bytes = 0``) and event frames are checked by CRC only."""
    max_burst: int = 255
    record_bytes: int = 0
    max_records_per_frame: int = 255


@dataclass
class DecoderStats:
    """Everything the decoder rejected. None of it is silent: the controller reports these."""
    frames: int = 0           # intact frames
    event_frames: int = 0
    records: int = 0
    crc_errors: int = 0       # frames with a plausible header but a bad CRC
    bad_headers: int = 0      # SYNC followed by an impossible type or length
    garbage_bytes: int = 0    # bytes skipped while hunting for SYNC

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def errors(self):
        return self.crc_errors + self.bad_headers


class FrameDecoder:
    """Incremental frame decoder.

    :meth:`feed` takes any bytes and returns the frames completed so far: a list of
    ``(type, payload)`` for responses, and a list of ``bytes`` chunks holding the records of
    event frames (``n * record_bytes`` bytes each, the count byte removed).

    A frame whose CRC fails is dropped and the search for SYNC resumes at the byte after its
    SYNC, so a real frame hidden behind a false SYNC is still found.
    """

    def __init__(self, limits: FrameLimits = None):
        self.limits = limits or FrameLimits()
        self.stats = DecoderStats()
        self._buf = bytearray()

    @property
    def pending(self):
        """Bytes held back: the start of a frame not yet complete."""
        return len(self._buf)

    def _valid_length(self, frame_type, length):
        lim = self.limits
        if frame_type == FrameType.READ_DATA:
            return length >= 7 and (length - 3) % 4 == 0 and (length - 3) // 4 <= lim.max_burst
        if frame_type == FrameType.WRITE_ACK:
            return length == 4
        if frame_type == FrameType.ERROR:
            return length == 2
        if frame_type == FrameType.EVENTS:
            if lim.record_bytes:
                n, rest = divmod(length - 1, lim.record_bytes)
                return rest == 0 and 1 <= n <= lim.max_records_per_frame
            return length >= 2
        return False

    def feed(self, data):
        buf = self._buf
        buf += data
        stats = self.stats
        responses, events = [], []
        rb = self.limits.record_bytes
        pos = 0
        end_buf = len(buf)
        while True:
            i = buf.find(SYNC, pos)
            if i < 0:
                stats.garbage_bytes += end_buf - pos
                pos = end_buf
                break
            stats.garbage_bytes += i - pos
            pos = i
            if end_buf - i < 4:
                break
            frame_type, length = buf[i + 1], buf[i + 2] | buf[i + 3] << 8
            if not self._valid_length(frame_type, length):
                stats.bad_headers += 1
                stats.garbage_bytes += 1
                pos = i + 1
                continue
            end = i + 6 + length
            if end > end_buf:
                break
            crc = buf[end - 2] | buf[end - 1] << 8
            if crc_hqx(buf[i + 1:end - 2], CRC_INIT) != crc or (
                    frame_type == FrameType.EVENTS and rb
                    and buf[i + 4] * rb + 1 != length):
                stats.crc_errors += 1
                stats.garbage_bytes += 1
                pos = i + 1
                continue
            stats.frames += 1
            if frame_type == FrameType.EVENTS:
                stats.event_frames += 1
                stats.records += buf[i + 4]
                events.append(bytes(buf[i + 5:end - 2]))
            else:
                responses.append((frame_type, bytes(buf[i + 4:end - 2])))
            pos = end
        del buf[:pos]
        return responses, events
