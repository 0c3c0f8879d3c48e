"""The one description of the register map: gateware and host both build it from here.

The map is a list of :class:`Register` entries, generated from :class:`CoreParameters` and
:class:`SocParameters`. Addresses are assigned here, in order, and nowhere else: the register
bank (:mod:`heraldry.gateware.regbank`) decodes them, the protocol engine checks them, and the
host (:mod:`heraldry.host`) rebuilds the same map from the identification block it reads from
the device.

Every register is read and written as 32-bit words. A register wider than 32 bits spans
``ceil(width / 32)`` consecutive words, least significant word first; such registers are all
read-only snapshots, so a multi-word read is never torn. An array register (``count > 1``,
the decision table) occupies one word per element.

Identification block
--------------------
The first :data:`ID_WORDS` words never move, whatever the parameters: they carry the magic
number, the protocol version and every build parameter the host needs to rebuild the rest of
the map, and ``id.map_hash``, a CRC-32 of the map's description, that the host compares with
the hash of the map it rebuilt.
"""

import enum
import hashlib
import json
import zlib
from dataclasses import dataclass, field, replace

from amaranth.hdl import Shape
from amaranth.lib import data

from .emulator import MIN_ARRIVAL_OFFSET
from .layouts import HERALD_LATENCY, RUN_START_LATENCY, START_LATENCY, CoreParameters

__all__ = ["Access", "Register", "SocParameters", "RegisterMap", "register_map",
           "layout_leaves", "field_at", "MAGIC", "PROTOCOL_VERSION", "ID_WORDS", "WORD_BITS",
           "CONTROL_START", "CONTROL_STOP", "CONTROL_SNAPSHOT", "CONTROL_RESEED",
           "GATEWARE_VERSION",
           "gateware_hash"]

#: ``id.magic``: "HRLD" in ASCII, most significant byte first.
MAGIC = 0x48524C44
#: ``id.protocol_version``: bumped whenever the frame format or the map's rules change
#: (2: run-start registers are written only while no run is active, ERROR RUN_ACTIVE).
PROTOCOL_VERSION = 2
#: Version of the gateware, packed ``major << 16 | minor << 8 | patch``.
GATEWARE_VERSION = (0, 1, 0)
WORD_BITS = 32
#: Words of the identification block (fixed addresses 0 .. ID_WORDS - 1).
ID_WORDS = 24

#: Bits of the write-only ``control`` register: strobes, one cycle each.
CONTROL_START = 1 << 0
CONTROL_STOP = 1 << 1
CONTROL_SNAPSHOT = 1 << 2
#: Reseed the link emulator's generators from ``emulator.seed_lo/hi``.
CONTROL_RESEED = 1 << 3


class Access(enum.Enum):
    """How a register is accessed over the bus."""
    #: Fixed at build time (identification block).
    CONST = "const"
    #: Read/write storage; the configuration shadow registers.
    RW = "rw"
    #: Read-only, live value.
    RO = "ro"
    #: Read-only, value latched by the ``control`` SNAPSHOT strobe.
    SNAPSHOT = "snapshot"
    #: Write-only; reads return 0. Writes are strobes (``control``, ``table``).
    WO = "wo"

    @property
    def readable(self):
        return self is not Access.WO

    @property
    def writable(self):
        return self in (Access.RW, Access.WO)


@dataclass(frozen=True)
class Register:
    """One register of the map.

    Attributes
    ----------
    name : str
        Dotted name, unique in the map (``config.windows.0.start``, ``counters.attempts``).
    width : int
        Bits of the value (of one element, for arrays).
    access : Access
    reset : int
        Reset value (the value itself, for :attr:`Access.CONST`).
    doc : str
        What it means, for the generated documentation.
    port : str
        The register bank port the register is connected to (``id``, ``control``,
        ``config``, ``table``, ``counters``, ``status``, ``link``).
    path : tuple
        Keys from that port's view to the field (``("windows", 0, "start")``).
    count : int
        Elements (one word each), for the table; 1 otherwise.
    idle_only : bool
        Written only while no run is active: the core reads it throughout a run (the
        configuration, the decision table), so it must hold from the run's start cycle to
        its end. The protocol engine refuses a write request that reaches such a register
        while a run is active (ERROR ``RUN_ACTIVE``, counted in ``link.rx_refused``); the
        others (``control``, the link emulator's) take effect whenever they are written.
    addr : int
        Word address of the first word; assigned by :class:`RegisterMap`.
    """
    name: str
    width: int
    access: Access
    reset: int = 0
    doc: str = ""
    port: str = ""
    path: tuple = ()
    count: int = 1
    idle_only: bool = False
    addr: int = -1

    @property
    def words_per_element(self):
        return -(-self.width // WORD_BITS)

    @property
    def words(self):
        return self.words_per_element * self.count

    def describe(self):
        """A JSON-able description (what the map hash covers)."""
        return [self.name, self.width, self.access.value,
                self.reset if self.access is Access.CONST else 0, self.count, self.addr,
                self.idle_only]


def layout_leaves(layout, path=()):
    """Yield ``(path, width, offset)`` for every scalar field of a :mod:`amaranth.lib.data`
    layout, in layout order; ``path`` holds field names and array indices."""
    if isinstance(layout, data.StructLayout):
        for name, fld in layout:
            for sub, width, offset in layout_leaves(fld.shape, path + (name,)):
                yield sub, width, fld.offset + offset
    elif isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = Shape.cast(elem).width
        for i in range(layout.length):
            for sub, width, offset in layout_leaves(elem, path + (i,)):
                yield sub, width, i * size + offset
    else:
        yield path, Shape.cast(layout).width, 0


def field_at(view, path):
    """The field of ``view`` (a view of a :mod:`amaranth.lib.data` layout) at ``path``, as
    :func:`layout_leaves` and :attr:`Register.path` give it: field names and array
    indices."""
    for key in path:
        view = view[key] if isinstance(key, int) else getattr(view, key)
    return view


@dataclass(frozen=True)
class SocParameters:
    """Build-time parameters of the SoC around the core.

    Parameters
    ----------
    core : CoreParameters
    clk_freq : int
        Core clock frequency in Hz; the host converts nanoseconds with it.
    fifo_depth : int
        Event FIFO depth in records.
    max_burst : int
        Most words in one read or write request (the write buffer's depth).
    max_records_per_frame : int
        Most event records in one event frame.
    frontend_latency : int
        Cycles of the board front-end (pins to core ``clicks``), ``S`` in the timing
        contract; 0 for the bare SoC.
    output_latency : int
        Cycles from a core output (``trig``, ``gate``, ...) to its pin; 0 for the bare SoC.
    emulator : bool
        Include the link emulator (:mod:`heraldry.gateware.emulator`), so the device can
        herald without detectors (self-test, virtual board).
    """
    core: CoreParameters = field(default_factory=CoreParameters)
    clk_freq: int = 100_000_000
    fifo_depth: int = 256
    max_burst: int = 64
    max_records_per_frame: int = 128
    frontend_latency: int = 0
    output_latency: int = 0
    emulator: bool = True

    def __post_init__(self):
        for name in ("clk_freq", "fifo_depth", "max_burst", "max_records_per_frame"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not 1 <= self.max_burst <= 255:
            raise ValueError(f"max_burst = {self.max_burst}: must be 1..255 (one count byte)")
        if not 1 <= self.max_records_per_frame <= 255:
            raise ValueError(f"max_records_per_frame = {self.max_records_per_frame}: "
                             f"must be 1..255 (one count byte)")
        for name in ("frontend_latency", "output_latency"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be an integer >= 0, not "
                                 f"{getattr(self, name)!r}")

    @property
    def record_bytes(self):
        """Bytes of one record on the wire: the record layout's bits, little-endian."""
        return -(-self.core.record_layout().size // 8)


def gateware_hash():
    """CRC-32 of the gateware sources (this package's ``.py`` files), for ``id.gateware_hash``:
    tells the host which gateware it talks to even between version bumps."""
    from pathlib import Path
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return int.from_bytes(digest.digest()[:4], "little")


#: (name, doc) of the identification block, in address order; values filled by
#: :func:`_id_values`. Words ID_WORDS - len(...) are reserved (read 0).
_ID_FIELDS = [
    ("magic", "Magic number 0x48524C44 (\"HRLD\")."),
    ("protocol_version", "Version of the frame protocol and of the map's rules."),
    ("gateware_version", "Gateware version, major << 16 | minor << 8 | patch."),
    ("gateware_hash", "32 bits of the SHA-256 of the gateware sources."),
    ("map_hash", "CRC-32 of the register map's description (see RegisterMap.hash)."),
    ("clk_freq", "Core clock frequency in Hz."),
    ("n_channels", "Detector channels."),
    ("n_windows", "Detection windows per attempt."),
    ("n_outputs", "Trigger outputs."),
    ("offset_width", "Bits of every in-attempt offset (period, windows, outputs, holdoff)."),
    ("outcome_width", "Bits of a decision-table entry."),
    ("count_width", "Bits of every counter, attempt index and record start cycle."),
    ("limit_width", "Bits of max_attempts, timeout and batch."),
    ("seq_width", "Bits of the record sequence number."),
    ("table_depth", "Entries of the decision table."),
    ("herald_latency", "L: cycles from the last in-window offset to the herald."),
    ("start_latency", "Cycles from ready sampled to the attempt strobe."),
    ("frontend_latency", "S: cycles from the detector pins to the core's click inputs."),
    ("fifo_depth", "Event FIFO depth in records."),
    ("max_burst", "Most words in one read or write request."),
    ("max_records_per_frame", "Most event records in one event frame."),
    ("output_latency", "Cycles from a core output to its pin."),
    ("emulator", "1 if the link emulator is built in."),
    ("run_start_latency", "K: cycles from the start cycle to the first sampling of ready."),
]
assert len(_ID_FIELDS) <= ID_WORDS


def _id_values(soc, map_hash):
    p = soc.core
    major, minor, patch = GATEWARE_VERSION
    return {
        "magic": MAGIC, "protocol_version": PROTOCOL_VERSION,
        "gateware_version": major << 16 | minor << 8 | patch,
        "gateware_hash": gateware_hash(), "map_hash": map_hash,
        "clk_freq": soc.clk_freq, "n_channels": p.n_channels, "n_windows": p.n_windows,
        "n_outputs": p.n_outputs, "offset_width": p.offset_width,
        "outcome_width": p.outcome_width, "count_width": p.count_width,
        "limit_width": p.limit_width, "seq_width": p.seq_width,
        "table_depth": p.table_depth, "herald_latency": HERALD_LATENCY,
        "start_latency": START_LATENCY, "frontend_latency": soc.frontend_latency,
        "fifo_depth": soc.fifo_depth, "max_burst": soc.max_burst,
        "max_records_per_frame": soc.max_records_per_frame,
        "output_latency": soc.output_latency,
        "emulator": int(soc.emulator),
        "run_start_latency": RUN_START_LATENCY,
    }


#: Docstrings of configuration fields (keyed by the first path element).
_CONFIG_DOCS = {
    "period": "Attempt period in cycles.",
    "windows": "Detection window: start offset and length in cycles (length 0: disabled).",
    "outputs": "Trigger output: high for offsets start <= o < stop.",
    "holdoff": "Dead time after an accepted click, in cycles (clicks inside: afterpulses).",
    "stop_on_herald": "End the run at the first herald.",
    "max_attempts": "End the run after this many attempts (0: no limit).",
    "timeout": "End the run this many cycles after its start (0: no limit).",
    "batch": "Attempts per batch; after a batch wait for a rising edge of ready (0: none).",
    "diagnostic": "Also emit DIAGNOSTIC records for attempts with clicks but no herald.",
}

_COUNTER_DOCS = {
    "attempts": "Attempts started in this run.",
    "heralds": "Heralds per outcome code (element o: outcome o + 1).",
    "clicks_in_window": "Accepted clicks inside any window, per channel.",
    "clicks_out_of_window": "Accepted clicks outside every window, per channel.",
    "multi_clicks": "Second clicks in one window x channel cell of an attempt.",
    "afterpulses": "Clicks rejected by the holdoff, per channel.",
    "dropped_records": "Event records dropped because the event FIFO was full.",
    "cycles": "Cycles since the run started.",
}

_EMULATOR_DOCS = {
    "enable": "1: the link emulator replaces the detector inputs and the ready input.",
    "windows": "Emulated photons of a window: arrival offset in cycles after the attempt "
               f"strobe (at least {MIN_ARRIVAL_OFFSET}; below it the window never clicks), "
               "uniform jitter (cycles), cumulative 32-bit thresholds of the click patterns "
               "1 .. 2**channels - 1.",
    "dark": "Dark-click probability per running cycle and detector, times 2**32.",
    "recal_cycles": "Cycles ready is held low after recal rises (at least 1).",
}

#: Live link and FIFO statistics (32-bit, wrapping): name -> doc.
LINK_FIELDS = {
    "rx_frames": "Request frames received intact and executed.",
    "rx_crc_errors": "Request frames rejected for a bad CRC.",
    "rx_errors": "Request frames rejected for a bad type, length or address.",
    "rx_refused": "Write requests refused whole because they reach a register written only "
                  "while no run is active (config, table) and a run was active (ERROR "
                  "RUN_ACTIVE).",
    "rx_overruns": "Bytes lost by the PHY receiver (overrun or framing error).",
    "tx_event_frames": "Event frames sent.",
    "tx_records": "Event records sent.",
    "records_in": "Event records the event FIFO accepted from the core (dropped ones are "
                  "counted in counters.dropped_records instead).",
    "fifo_level": "Records waiting in the event FIFO.",
    "fifo_max_level": "Highest event FIFO level since reset.",
}

#: Live status fields: name -> (width, doc). ``cycle`` and ``start_cycle`` also have
#: snapshot copies.
STATUS_FIELDS = {
    "running": (1, "A run is in progress."),
    "recal": (1, "Waiting for a rising edge of ready after a batch."),
    "reason": (2, "Reason of the last run's end (valid once runs > 0)."),
    "runs": (32, "Runs ended since reset (wraps)."),
}


class RegisterMap:
    """The register map of a SoC built with ``soc`` parameters.

    Indexable by name: ``regmap["config.period"]`` is a :class:`Register` with its address.
    """

    def __init__(self, soc: SocParameters):
        self.soc = soc
        p = soc.core
        regs = []
        ro = Access.RO
        # Placeholder values for the ID block: the map hash covers only the structure.
        for name, doc in _ID_FIELDS:
            regs.append(Register(f"id.{name}", WORD_BITS, Access.CONST, 0, doc, "id", (name,)))
        for i in range(ID_WORDS - len(_ID_FIELDS)):
            regs.append(Register(f"id.reserved{i}", WORD_BITS, Access.CONST, 0,
                                 "Reserved, reads 0.", "id", (f"reserved{i}",)))
        regs.append(Register(
            "control", 4, Access.WO, 0,
            "Strobes: bit 0 START (accepted while not running), bit 1 STOP, bit 2 SNAPSHOT "
            "(latch counters and snapshot status), bit 3 RESEED (link emulator).",
            "control", ()))
        for name, (width, doc) in STATUS_FIELDS.items():
            regs.append(Register(f"status.{name}", width, ro, 0, doc, "status", (name,)))
        regs.append(Register(
            "status.next_seq", p.seq_width, ro, 0,
            "Sequence number of the next record the core will produce (records produced "
            "since reset, dropped ones included, modulo 2**seq_width).", "status",
            ("next_seq",)))
        for name, doc in LINK_FIELDS.items():
            regs.append(Register(f"link.{name}", WORD_BITS, ro, 0, doc, "link", (name,)))
        for path, width, _ in layout_leaves(p.config_layout()):
            regs.append(Register("config." + ".".join(map(str, path)), width, Access.RW, 0,
                                 _CONFIG_DOCS[path[0]], "config", path, idle_only=True))
        if soc.emulator:
            from .emulator import emulator_config_layout
            for path, width, _ in layout_leaves(emulator_config_layout(p)):
                regs.append(Register("emulator." + ".".join(map(str, path)), width,
                                     Access.RW, 0, _EMULATOR_DOCS[path[0]], "emulator", path))
            for half in ("lo", "hi"):
                regs.append(Register(f"emulator.seed_{half}", WORD_BITS, Access.RW, 0,
                                     f"Generator seed, {half} 32 bits; applied by RESEED.",
                                     "emulator_seed", (half,)))
        regs.append(Register(
            "snapshot.cycle", p.count_width, Access.SNAPSHOT, 0,
            "Cycles since reset, at the snapshot.", "status", ("cycle",)))
        regs.append(Register(
            "snapshot.start_cycle", p.count_width, Access.SNAPSHOT, 0,
            "Cycle (since reset) in which the last run started, at the snapshot.",
            "status", ("start_cycle",)))
        for path, width, _ in layout_leaves(p.counters_layout()):
            regs.append(Register("counters." + ".".join(map(str, path)), width,
                                 Access.SNAPSHOT, 0, _COUNTER_DOCS[path[0]], "counters", path))
        regs.append(Register(
            "table", p.outcome_width, Access.WO, 0,
            "Decision table: entry i at table + i holds the outcome (0: no herald) of "
            "pattern i. Written only while no run is active.", "table", (),
            count=p.table_depth, idle_only=True))

        addr = 0
        placed = []
        for reg in regs:
            placed.append(replace(reg, addr=addr))
            addr += reg.words
        self.size = addr
        self.hash = zlib.crc32(json.dumps([r.describe() for r in placed]).encode())
        values = _id_values(soc, self.hash)
        self.registers = [
            replace(r, reset=values.get(r.path[0], 0)) if r.port == "id" else r
            for r in placed]
        self._by_name = {r.name: r for r in self.registers}
        assert len(self._by_name) == len(self.registers)

    def __getitem__(self, name) -> Register:
        return self._by_name[name]

    def __contains__(self, name):
        return name in self._by_name

    def __iter__(self):
        return iter(self.registers)

    def group(self, prefix):
        """Registers whose name starts with ``prefix``, in address order."""
        return [r for r in self.registers if r.name.startswith(prefix)]

    def span(self, prefix):
        """``(first address, words)`` covering the registers named ``prefix...``; they are
        contiguous by construction."""
        regs = self.group(prefix)
        first = regs[0].addr
        end = regs[-1].addr + regs[-1].words
        assert sum(r.words for r in regs) == end - first, prefix
        return first, end - first

    def ranges(self, predicate):
        """Merged ``[(start, end), ...]`` word-address ranges of registers matching
        ``predicate(register)``."""
        out = []
        for r in self.registers:
            if predicate(r):
                if out and out[-1][1] == r.addr:
                    out[-1] = (out[-1][0], r.addr + r.words)
                else:
                    out.append((r.addr, r.addr + r.words))
        return out

    def markdown(self):
        """The map as a Markdown table (for the documentation)."""
        lines = ["| address | name | width | access | reset | description |",
                 "|---|---|---|---|---|---|"]
        for r in self.registers:
            addr = f"0x{r.addr:03x}"
            if r.words > 1:
                addr += f"..0x{r.addr + r.words - 1:03x}"
            reset = f"0x{r.reset:x}" if r.access is Access.CONST else str(r.reset)
            lines.append(f"| {addr} | `{r.name}` | {r.width}"
                         f"{f' x {r.count}' if r.count > 1 else ''} | {r.access.value}"
                         f"{' (idle only)' if r.idle_only else ''} | "
                         f"{reset} | {r.doc} |")
        return "\n".join(lines)


def register_map(soc: SocParameters) -> RegisterMap:
    return RegisterMap(soc)


ID_FIELD_NAMES = [name for name, _ in _ID_FIELDS]
__all__ += ["ID_FIELD_NAMES", "LINK_FIELDS", "STATUS_FIELDS"]
