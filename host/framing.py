"""Host side of the framed byte protocol (format: :mod:`heraldry.gateware.protocol`).

:func:`encode_frame` builds a frame; :class:`FrameDecoder` turns an arbitrary byte stream
into intact frames, resynchronising after garbage and counting everything it throws away.
The decoder's loop runs once per frame, never once per record: event frames carry up to
``max_records_per_frame`` records whose bytes are handed on in one piece.
"""

from dataclasses import dataclass, fields
from zlib import crc32

from ..gateware.protocol import CRC_BYTES, FRAME_OVERHEAD, SYNC, ErrorCode, FrameType

__all__ = ["encode_frame", "FrameDecoder", "DecoderStats", "FrameLimits", "FrameType",
           "ErrorCode", "SYNC"]


def encode_frame(frame_type: int, payload: bytes = b"") -> bytes:
    """One complete frame."""
    body = bytes((frame_type, len(payload) & 0xFF, len(payload) >> 8)) + bytes(payload)
    return bytes((SYNC,)) + body + crc32(body).to_bytes(CRC_BYTES, "little")


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
    ``(type, payload)`` for responses, and a list holding at most one ``bytearray``: the
    records of every event frame completed by this call, concatenated (count bytes removed),
    ready for :func:`~heraldry.host.records.decode_records`.

    A frame whose CRC fails is dropped and the search for SYNC resumes at the byte after its
    SYNC, so a real frame hidden behind a false SYNC is still found.
    """

    def __init__(self, limits: FrameLimits = None):
        self.stats = DecoderStats()
        self._buf = bytearray()
        self.limits = limits or FrameLimits()

    @property
    def limits(self):
        return self._limits

    @limits.setter
    def limits(self, limits):
        self._limits = limits
        # Valid payload lengths per frame type, looked up once per frame.
        lim = limits
        valid = {
            FrameType.READ_DATA: {3 + 4 * n for n in range(1, lim.max_burst + 1)},
            FrameType.WRITE_ACK: {4},
            FrameType.ERROR: {2},
            FrameType.EVENTS: ({1 + n * lim.record_bytes
                                for n in range(1, lim.max_records_per_frame + 1)}
                               if lim.record_bytes else set(range(2, 1 << 16))),
        }
        self._valid = {int(t): frozenset(v) for t, v in valid.items()}

    @property
    def pending(self):
        """Bytes held back: the start of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data):
        buf = self._buf
        buf += data
        stats = self.stats
        responses = []
        records = bytearray()
        rb = self.limits.record_bytes
        valid = self._valid
        no_lengths = frozenset()
        events_type = int(FrameType.EVENTS)
        view = memoryview(buf)
        pos = 0
        end_buf = len(buf)
        garbage = 0
        try:
            while True:
                if pos < end_buf and buf[pos] == SYNC:
                    i = pos
                else:
                    i = buf.find(SYNC, pos)
                    if i < 0:
                        garbage += end_buf - pos
                        pos = end_buf
                        break
                    garbage += i - pos
                    pos = i
                if end_buf - i < 4:
                    break
                frame_type, length = buf[i + 1], buf[i + 2] | buf[i + 3] << 8
                if length not in valid.get(frame_type, no_lengths):
                    stats.bad_headers += 1
                    garbage += 1
                    pos = i + 1
                    continue
                end = i + FRAME_OVERHEAD + length
                if end > end_buf:
                    break
                body_end = end - CRC_BYTES
                if crc32(view[i + 1:body_end]) != int.from_bytes(view[body_end:end],
                                                                    "little") or (
                        frame_type == events_type and rb and buf[i + 4] * rb + 1 != length):
                    stats.crc_errors += 1
                    garbage += 1
                    pos = i + 1
                    continue
                stats.frames += 1
                if frame_type == events_type:
                    stats.event_frames += 1
                    stats.records += buf[i + 4]
                    records += view[i + 5:body_end]
                else:
                    responses.append((frame_type, view[i + 4:body_end].tobytes()))
                pos = end
        finally:
            view.release()
        stats.garbage_bytes += garbage
        del buf[:pos]
        return responses, [records] if records else []
