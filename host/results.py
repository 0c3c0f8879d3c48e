"""Counters snapshots, run results and their statistics, and saving records to ``.npz``.

File format
-----------
:func:`save_records` writes a NumPy ``.npz`` archive (no dependency beyond numpy) with two
members:

``records``
    The structured record array, dtype as in :mod:`heraldry.host.records`.
``metadata``
    A 0-d unicode array holding JSON: ``{"format": "heraldry-records", "version": 1,
    "config": Config.to_dict() or null, "table": [...] or null, "device":
    DeviceInfo.as_dict() or null, "counters": {...} or null, "link": {...} or null,
    "extra": {...}}``.

:func:`load_records` checks the record dtype against the one derived from the stored device
description, so a file is never misread.
"""

import json
import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from ..gateware.layouts import Reason, RecordKind
from ..gateware.regmap import layout_leaves

__all__ = ["Counters", "RunResult", "LinkReport", "wilson_interval", "save_records",
           "load_records", "Recording"]


def _nest(items):
    """``[(path, value), ...]`` -> nested dict/list structure."""
    root = {}
    for path, value in items:
        node = root
        for key, nxt in zip(path, path[1:]):
            if key not in node:
                node[key] = {}
            node = node[key]
        node[path[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            if node and all(isinstance(k, int) for k in node):
                return [listify(node[i]) for i in range(len(node))]
            return {k: listify(v) for k, v in node.items()}
        return node
    return listify(root)


class Counters:
    """A consistent snapshot of the device counters.

    Attributes are the fields of ``CoreParameters.counters_layout()``: ``attempts``,
    ``heralds`` (list, element o for outcome o + 1), ``clicks_in_window``,
    ``clicks_out_of_window``, ``afterpulses`` (lists per channel), ``multi_clicks`` (per
    window, per channel), ``dropped_records``, ``cycles``; plus ``cycle`` (cycles since
    reset at the snapshot), ``start_cycle`` (cycle the last run started) and ``clk_freq``.
    """

    def __init__(self, params, values: dict, cycle=0, start_cycle=0, clk_freq=None):
        self._values = values
        self.params = params
        self.cycle, self.start_cycle, self.clk_freq = cycle, start_cycle, clk_freq

    @classmethod
    def from_words(cls, params, words, clk_freq):
        """Decode snapshot.cycle, snapshot.start_cycle and the counters, as read in one burst."""
        wpc = -(-params.count_width // 32)

        def take(i):
            value = 0
            for k in range(wpc):
                value |= words[i + k] << (32 * k)
            return value
        cycle, start_cycle = take(0), take(wpc)
        items = []
        i = 2 * wpc
        for path, width, _ in layout_leaves(params.counters_layout()):
            items.append((path, take(i)))
            i += -(-width // 32)
        return cls(params, _nest(items), cycle, start_cycle, clk_freq)

    def __getattr__(self, name):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def as_dict(self):
        """The counters in the golden model's form (``RunResult.counters``)."""
        return json.loads(json.dumps(self._values))

    @property
    def elapsed_s(self):
        return self.cycles / self.clk_freq if self.clk_freq else None

    def __repr__(self):
        return f"Counters({self._values})"


def wilson_interval(successes, trials, confidence=0.95):
    """Wilson score interval for a binomial proportion; ``(nan, nan)`` without trials."""
    if trials == 0:
        return (math.nan, math.nan)
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class LinkReport:
    """Losses during a run; all zero when nothing was lost.

    Attributes
    ----------
    seq_gaps : int
        Records missing between received sequence numbers.
    device_drops : int
        Records the device dropped because its event FIFO was full (counters.dropped_records).
    link_lost : int
        Records the device sent (accepted into its FIFO) that did not arrive intact.
    crc_errors : int
        Frames the host rejected (bad CRC or impossible header) during the run.
    garbage_bytes : int
        Bytes the host skipped while resynchronising.
    """
    seq_gaps: int = 0
    device_drops: int = 0
    link_lost: int = 0
    crc_errors: int = 0
    garbage_bytes: int = 0

    @property
    def clean(self):
        return not (self.seq_gaps or self.device_drops or self.link_lost or self.crc_errors
                    or self.garbage_bytes)

    def as_dict(self):
        return dict(vars(self))


@dataclass
class RunResult:
    """What :meth:`Controller.run` measured.

    Attributes
    ----------
    records : ndarray
        The run's records (structured dtype, see :mod:`heraldry.host.records`), END included.
    counters : Counters
        Snapshot after the run.
    reason : Reason
        Why the run ended.
    attempts, heralds : int
    outcome_counts : dict
        Heralds per outcome code, from the device counters.
    duration_s : float
        Device time of the run (``counters.cycles / clk_freq``).
    rate_hz : float
        Heralds per second of device time.
    p_success : float
        Heralds per attempt.
    p_interval : (float, float)
        Wilson score interval of ``p_success`` at ``confidence``.
    link : LinkReport
    """
    records: np.ndarray
    counters: Counters
    reason: Reason
    attempts: int
    heralds: int
    outcome_counts: dict
    duration_s: float
    rate_hz: float
    p_success: float
    p_interval: tuple
    confidence: float
    link: LinkReport
    config: object = None
    device: object = None
    table: list = field(default=None, repr=False)

    @property
    def herald_records(self):
        return self.records[self.records["kind"] == RecordKind.HERALD.value]

    def save(self, path):
        save_records(path, self.records, config=self.config, device=self.device,
                     table=self.table, counters=self.counters, link=self.link)

    def summary(self):
        lo, hi = self.p_interval
        text = (f"{self.reason.name}: {self.attempts} attempts, {self.heralds} heralds in "
                f"{self.duration_s * 1e3:.4g} ms; rate {self.rate_hz:.4g} /s; p = "
                f"{self.p_success:.4g} [{lo:.4g}, {hi:.4g}] ({self.confidence:.0%})")
        if not self.link.clean:
            text += f"; LOSSES {self.link.as_dict()}"
        return text


@dataclass
class Recording:
    """What :func:`load_records` returns."""
    records: np.ndarray
    config: object
    device: object
    table: list
    metadata: dict


def save_records(path, records, *, config=None, device=None, table=None, counters=None,
                 link=None, extra=None):
    """Save ``records`` with their configuration and device description to ``path`` (.npz)."""
    meta = {
        "format": "heraldry-records", "version": 1,
        "config": config.to_dict() if config is not None else None,
        "table": list(map(int, table)) if table is not None else None,
        "device": device.as_dict() if device is not None else None,
        "counters": counters.as_dict() if counters is not None else None,
        "link": link.as_dict() if link is not None else None,
        "extra": extra or {},
    }
    np.savez(path, records=records, metadata=np.array(json.dumps(meta)))


def load_records(path) -> Recording:
    """Load a file written by :func:`save_records`."""
    from .config import Config
    from .device import DeviceInfo
    from .records import record_dtype
    with np.load(path, allow_pickle=False) as archive:
        records = archive["records"]
        meta = json.loads(str(archive["metadata"]))
    if meta.get("format") != "heraldry-records":
        raise ValueError(f"{path}: not a heraldry records file")
    device = DeviceInfo(**meta["device"]) if meta.get("device") else None
    if device is not None and records.dtype != record_dtype(device.core_params):
        raise ValueError(f"{path}: record dtype {records.dtype} does not match the device "
                         f"description ({record_dtype(device.core_params)})")
    config = Config.from_dict(meta["config"], meta.get("table")) if meta.get("config") \
        else None
    return Recording(records, config, device, meta.get("table"), meta)
