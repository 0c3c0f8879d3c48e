"""Event records as numpy structured arrays, derived from ``CoreParameters.record_layout()``.

The dtype has one field per scalar of the record layout; fields inside arrays become
array fields. For the default parameters (2 windows x 2 channels)::

    seq      u4            sequence number (wraps at 2**seq_width, never reset)
    kind     u1            RecordKind: 1 HERALD, 2 DIAGNOSTIC, 3 END
    reason   u1            Reason (END records): 0 HERALD, 1 TIMEOUT, 2 MAX_ATTEMPTS, 3 STOPPED
    outcome  u1            outcome code of a HERALD record, else 0
    attempt  u8            attempt index in the run (END: attempts in the run)
    start    u8            attempt start, cycles since the run started (END: end cycle)
    cls      u1 (nw, nc)   click class per window x channel: 0 none, 1 one, 2 more
    first    u2 (nw, nc)   core offset of the first click per window x channel (0 if none);
                           minus output_latency + frontend_latency: the time at the pins

On the wire a record is its layout's bits, little-endian, in ``ceil(size / 8)`` bytes.
:func:`decode_records` is vectorised: one numpy expression per field, never a loop per
record.
"""

from functools import lru_cache

import numpy as np

from ..gateware.layouts import CoreParameters
from ..gateware.regmap import layout_leaves

__all__ = ["record_dtype", "record_fields", "record_bytes", "decode_records",
           "encode_records", "records_equal", "PAD"]


def _uint(width):
    for size in (8, 16, 32, 64):
        if width <= size:
            return np.dtype(f"<u{size // 8}")
    raise ValueError(f"a {width}-bit record field does not fit a numpy integer")


@lru_cache(maxsize=None)
def record_fields(params: CoreParameters):
    """``[(name, shape, width, [(index, bit_offset), ...]), ...]`` in layout order."""
    groups = {}
    for path, width, offset in layout_leaves(params.record_layout()):
        names = [k for k in path if isinstance(k, str)]
        index = tuple(k for k in path if isinstance(k, int))
        name = names[-1]
        group = groups.setdefault(name, (width, []))
        if group[0] != width:
            raise ValueError(f"record fields named {name!r} differ in width")
        group[1].append((index, offset))
    out = []
    for name, (width, leaves) in groups.items():
        ndim = len(leaves[0][0])
        shape = tuple(max(ix[d] for ix, _ in leaves) + 1 for d in range(ndim))
        out.append((name, shape, width, leaves))
    return out


@lru_cache(maxsize=None)
def record_dtype(params: CoreParameters) -> np.dtype:
    """The structured dtype of records from a core with ``params``."""
    # Aligned fields: a few bytes of padding per record make decoding markedly faster.
    return np.dtype([(name, _uint(width), shape) if shape else (name, _uint(width))
                     for name, shape, width, _ in record_fields(params)], align=True)


def record_bytes(params: CoreParameters) -> int:
    return -(-params.record_layout().size // 8)


#: Bytes of padding after the last record that let every field be read as one unaligned
#: word (callers that join record bytes anyway append it and pass ``padded=True``).
PAD = bytes(8)


def decode_records(params: CoreParameters, raw, *, padded=False) -> np.ndarray:
    """Decode ``n * record_bytes`` bytes into a structured array of ``n`` records.

    With ``padded=True``, ``raw`` ends with :data:`PAD` (not decoded), which saves a copy.
    """
    rb = record_bytes(params)
    raw = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) \
        else raw.reshape(-1).view(np.uint8)
    size = len(raw) - (len(PAD) if padded else 0)
    n, rest = divmod(size, rb)
    if rest:
        raise ValueError(f"{size} bytes is not a whole number of {rb}-byte records")
    out = np.zeros(n, dtype=record_dtype(params))      # padding bytes defined too
    if n == 0:
        return out
    if padded:
        buf = raw
    else:
        buf = np.zeros(n * rb + len(PAD), dtype=np.uint8)
        buf[:n * rb] = raw
    # One scratch array per word size, reused by every field: fresh temporaries would cost
    # a page fault per 4 KiB each time.
    scratch = {}
    for name, shape, width, leaves in record_fields(params):
        column = out[name]
        for index, offset in leaves:
            byte, shift = divmod(offset, 8)
            if width + shift > 64:
                raise ValueError(f"record field {name} ({width} bits at bit {offset}) is "
                                 f"too wide to decode")
            # The narrowest unaligned word that holds the field: less memory traffic.
            word = _uint(width + shift)
            words = np.ndarray((n,), dtype=word, buffer=buf, offset=byte, strides=(rb,))
            if shift or width != word.itemsize * 8:
                value = scratch.get(word)
                if value is None:
                    value = scratch[word] = np.empty(n, dtype=word)
                np.right_shift(words, word.type(shift), out=value)
                if width + shift != word.itemsize * 8:
                    np.bitwise_and(value, word.type((1 << width) - 1), out=value)
            else:
                value = words
            if index:
                column[(slice(None),) + index] = value
            else:
                column[...] = value
    return out


def encode_records(params: CoreParameters, records: np.ndarray) -> bytes:
    """The wire bytes of ``records`` (inverse of :func:`decode_records`; for tests and
    benchmarks), vectorised the same way."""
    rb = record_bytes(params)
    n = len(records)
    acc = np.zeros((n, rb + 8), dtype=np.uint8)
    for name, shape, width, leaves in record_fields(params):
        column = records[name]
        for index, offset in leaves:
            value = column[(slice(None),) + index] if index else column
            value = value.astype(np.uint64) & np.uint64((1 << width) - 1)
            byte, shift = divmod(offset, 8)
            value = value << np.uint64(shift)
            for k in range((width + shift + 7) // 8):
                acc[:, byte + k] |= ((value >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(
                    np.uint8)
    return acc[:, :rb].tobytes()


def records_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Field-by-field equality (padding bytes between aligned fields are not compared:
    numpy does not copy them)."""
    return a.dtype == b.dtype and a.shape == b.shape and all(
        np.array_equal(a[name], b[name]) for name in a.dtype.names)
