"""Benchmark: host decode throughput, bytes off the link to numpy records.

Builds a stream of full event frames as the device sends them under load (CRC and all),
then times the host's path for each 1 MiB read from the link:
:class:`~heraldry.host.framing.FrameDecoder` (frames, CRC) and
:func:`~heraldry.host.records.decode_records` on that read's records, one batch per read
as ``Controller.events()`` yields them. Prints records per second for the whole path and
for the record decode alone.

    python -m heraldry.sim.bench_decode [--records N] [--frame K] [--repeat R]
"""

import argparse
import statistics
import time

import numpy as np

from ..gateware.protocol import FrameType
from ..gateware.regmap import SocParameters
from ..host.framing import FrameDecoder, FrameLimits, encode_frame
from ..host.records import PAD, decode_records, encode_records, record_dtype, records_equal

__all__ = ["make_stream", "bench", "main"]


def make_stream(soc: SocParameters, n_records: int, seed=0):
    """``(stream bytes, records)``: ``n_records`` random records in full event frames."""
    p = soc.core
    rng = np.random.default_rng(seed)
    records = np.zeros(n_records, dtype=record_dtype(p))
    records["seq"] = np.arange(n_records, dtype=np.uint32)
    records["kind"] = rng.integers(1, 4, n_records)
    records["outcome"] = rng.integers(0, p.n_outcomes + 1, n_records)
    records["attempt"] = np.arange(n_records) * 3
    records["start"] = np.arange(n_records) * 1000 + 7
    records["cls"] = rng.integers(0, 3, records["cls"].shape)
    records["first"] = rng.integers(0, 1 << p.offset_width, records["first"].shape)
    raw = encode_records(p, records)
    rb, k = soc.record_bytes, soc.max_records_per_frame
    frames = [encode_frame(FrameType.EVENTS, bytes((min(k, n_records - i),))
                           + raw[i * rb:(i + k) * rb])
              for i in range(0, n_records, k)]
    return b"".join(frames), records


def bench(soc: SocParameters, n_records=1_000_000, repeat=5, read_size=1 << 20):
    """Time the path the controller takes for every read from the link: frames, CRC, then
    the records of that read decoded into one batch (what ``events()`` yields)."""
    stream, expected = make_stream(soc, n_records)
    limits = FrameLimits(soc.max_burst, soc.record_bytes, soc.max_records_per_frame)
    full, decode_only = [], []
    for _ in range(repeat):
        decoder = FrameDecoder(limits)
        batches = []
        decode_time = 0.0
        t0 = time.perf_counter()
        for i in range(0, len(stream), read_size):
            _, chunks = decoder.feed(stream[i:i + read_size])
            if chunks:
                raw = chunks[0]
                raw += PAD
                t1 = time.perf_counter()
                batches.append(decode_records(soc.core, raw, padded=True))
                decode_time += time.perf_counter() - t1
        elapsed = time.perf_counter() - t0
        full.append(n_records / elapsed)
        decode_only.append(n_records / decode_time)
    records = np.concatenate(batches)
    if not records_equal(records, expected) or decoder.stats.errors:
        raise AssertionError("decode benchmark: records differ from what was encoded")
    return {"records": n_records, "stream_bytes": len(stream),
            "full_best": max(full), "full_median": statistics.median(full),
            "decode_best": max(decode_only), "decode_median": statistics.median(decode_only)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--frame", type=int, default=SocParameters().max_records_per_frame,
                        help="records per event frame (device's max_records_per_frame)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    soc = SocParameters(max_records_per_frame=args.frame)
    r = bench(soc, args.records, args.repeat)
    print(f"{r['records']} records, {soc.record_bytes} bytes each, {args.frame} per frame "
          f"({r['stream_bytes'] / 1e6:.1f} MB on the wire)")
    print(f"frames + CRC + decode: {r['full_best'] / 1e6:.1f} M records/s best, "
          f"{r['full_median'] / 1e6:.1f} M records/s median")
    print(f"record decode alone:   {r['decode_best'] / 1e6:.1f} M records/s best, "
          f"{r['decode_median'] / 1e6:.1f} M records/s median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
