"""What the host learns from the identification block, and the register map rebuilt from it."""

from dataclasses import asdict, dataclass

from ..gateware.layouts import CoreParameters
from ..gateware.regmap import (ID_FIELD_NAMES, ID_WORDS, MAGIC, PROTOCOL_VERSION,
                               RegisterMap, SocParameters)
from .errors import HeraldryError

__all__ = ["DeviceInfo", "DeviceError"]


class DeviceError(HeraldryError):
    """The device is not a heraldry controller this host can talk to."""


@dataclass(frozen=True)
class DeviceInfo:
    """The device description read from its identification block (see
    :mod:`heraldry.gateware.regmap` for the meaning of each field)."""
    magic: int
    protocol_version: int
    gateware_version: int
    gateware_hash: int
    map_hash: int
    clk_freq: int
    n_channels: int
    n_windows: int
    n_outputs: int
    offset_width: int
    outcome_width: int
    count_width: int
    limit_width: int
    seq_width: int
    table_depth: int
    herald_latency: int
    start_latency: int
    frontend_latency: int
    fifo_depth: int
    max_burst: int
    max_records_per_frame: int
    output_latency: int
    emulator: int
    run_start_latency: int

    @classmethod
    def for_params(cls, params: SocParameters):
        """What gateware built with ``params`` reports: for checking configurations
        (``Config.compile``, emulator settings) without a device."""
        words = [0] * ID_WORDS
        for reg in RegisterMap(params).group("id."):
            words[reg.addr] = reg.reset
        return cls.from_words(words)

    @classmethod
    def from_words(cls, words):
        """Validate and decode the ``ID_WORDS`` words of the identification block."""
        if len(words) < ID_WORDS:
            raise DeviceError(f"identification block: {len(words)} words, need {ID_WORDS}")
        values = dict(zip(ID_FIELD_NAMES, words))
        if values["magic"] != MAGIC:
            raise DeviceError(f"id.magic = 0x{values['magic']:08x}: not a heraldry device "
                              f"(expected 0x{MAGIC:08x})")
        if values["protocol_version"] != PROTOCOL_VERSION:
            raise DeviceError(f"id.protocol_version = {values['protocol_version']}: this "
                              f"host speaks version {PROTOCOL_VERSION}")
        info = cls(**values)
        regmap = info.regmap          # checks the parameters
        if regmap.hash != info.map_hash:
            raise DeviceError(f"id.map_hash = 0x{info.map_hash:08x}, but the map rebuilt "
                              f"from the identification block hashes to 0x{regmap.hash:08x}: "
                              f"host and gateware disagree on the register map")
        if regmap.soc.core.table_depth != info.table_depth:
            raise DeviceError(f"id.table_depth = {info.table_depth} does not match "
                              f"{info.n_windows} windows x {info.n_channels} channels")
        return info

    @property
    def core_params(self) -> CoreParameters:
        return CoreParameters(
            n_channels=self.n_channels, n_windows=self.n_windows, n_outputs=self.n_outputs,
            offset_width=self.offset_width, outcome_width=self.outcome_width,
            count_width=self.count_width, limit_width=self.limit_width,
            seq_width=self.seq_width)

    @property
    def soc_params(self) -> SocParameters:
        return SocParameters(
            core=self.core_params, clk_freq=self.clk_freq, fifo_depth=self.fifo_depth,
            max_burst=self.max_burst, max_records_per_frame=self.max_records_per_frame,
            frontend_latency=self.frontend_latency, output_latency=self.output_latency,
            emulator=bool(self.emulator))

    @property
    def regmap(self) -> RegisterMap:
        cached = self.__dict__.get("_regmap")
        if cached is None:
            cached = RegisterMap(self.soc_params)
            object.__setattr__(self, "_regmap", cached)
        return cached

    @property
    def version(self):
        v = self.gateware_version
        return f"{v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}"

    def as_dict(self):
        return asdict(self)

    def summary(self):
        return (f"heraldry gateware {self.version} (hash {self.gateware_hash:08x}), protocol "
                f"{self.protocol_version}; {self.clk_freq / 1e6:g} MHz, {self.n_channels} "
                f"channels, {self.n_windows} windows, {self.n_outputs} outputs; counters "
                f"{self.count_width} bits, table {self.table_depth} entries, herald latency "
                f"{self.herald_latency} cycles, front-end latency {self.frontend_latency}, "
                f"output latency {self.output_latency}; "
                f"event FIFO {self.fifo_depth} records")
