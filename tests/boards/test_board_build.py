"""Board descriptions, PLL solvers, pinout constraints, report parsing, and the two bitstreams
built from the pip-installed toolchain with their timing checked."""

import dataclasses
import json
import subprocess
import time

import pytest

from heraldry.boards import FRONTEND_LATENCY, OUTPUT_LATENCY, get_board
from heraldry.boards import build as build_module
from heraldry.boards.build import (RESEED_TIMEOUT_S, BuildError, BuildResult, FitError,
                                   Utilisation, _prepare, build_board, count_luts_ffs,
                                   format_result, parse_nextpnr_report,
                                   parse_nextpnr_utilisation, parse_yosys_stat, reseed_script,
                                   timing_message)
from heraldry.boards.pll import ecp5_pll_settings, ice40_pll_settings
from heraldry.gateware.regmap import RegisterMap

ICEBREAKER = get_board("icebreaker")
ULX3S = get_board("ulx3s-85f")


# -- PLLs -----------------------------------------------------------------------------------

def test_ice40_pll_matches_icepll():
    # icepll -i 12 -o 48: DIVR 0, DIVF 63, DIVQ 4, FILTER_RANGE 1 (VCO 768 MHz).
    s = ice40_pll_settings(12_000_000, 48_000_000)
    assert (s.divr, s.divf, s.divq, s.filter_range) == (0, 63, 4, 1)
    assert s.f_out == 48e6 and s.f_vco == 768e6


def test_ecp5_pll_matches_ecppll():
    # ecppll -i 25 -o F: (CLKI_DIV, CLKFB_DIV, CLKOP_DIV) for F = 200, 150, 125 MHz.
    for f_out, expected in ((200, (1, 8, 3)), (150, (1, 6, 4)), (125, (1, 5, 5))):
        s = ecp5_pll_settings(25_000_000, f_out * 1_000_000)
        assert (s.clki_div, s.clkfb_div, s.clkop_div) == expected, f_out
        assert s.f_out == f_out * 1e6 and s.f_vco == 600e6 + (f_out == 125) * 25e6


def test_pll_rejects_inexact_clocks():
    with pytest.raises(ValueError, match="iCE40 PLL cannot make exactly 47 MHz from 12 MHz"):
        ice40_pll_settings(12_000_000, 47_000_000)
    with pytest.raises(ValueError, match="iCE40 PLL output 300 MHz is outside 16 .. 275 MHz"):
        ice40_pll_settings(12_000_000, 300_000_000)
    with pytest.raises(ValueError, match="ECP5 PLL cannot make exactly 1000 MHz"):
        ecp5_pll_settings(25_000_000, 1_000_000_000)


# -- board descriptions ---------------------------------------------------------------------

def test_clock_targets():
    assert ICEBREAKER.clk_freq == 48_000_000 and ICEBREAKER.min_clk_freq == 48_000_000
    assert ULX3S.clk_freq == 125_000_000 and ULX3S.min_clk_freq == 125_000_000
    assert ICEBREAKER.uart_divisor == 16          # 3 Mbaud exactly
    assert ULX3S.uart_divisor == 42               # 2.976 Mbaud, 0.8 % off


@pytest.mark.parametrize("board", [ICEBREAKER, ULX3S], ids=lambda b: b.name)
def test_identification_block_reports_the_board(board):
    regmap = RegisterMap(board.soc_params)
    assert regmap["id.frontend_latency"].reset == FRONTEND_LATENCY == 3
    assert regmap["id.output_latency"].reset == OUTPUT_LATENCY == 2
    assert regmap["id.clk_freq"].reset == board.clk_freq
    assert regmap["id.n_channels"].reset == 2
    assert regmap["id.n_windows"].reset == (1 if board is ICEBREAKER else 2)
    assert regmap["id.emulator"].reset == (board is ULX3S)


def test_counters_do_not_wrap_within_a_run():
    # A day on the ULX3S; on the UP5K a night (12 h), the 41-bit counters' 12.7 h.
    assert 2 ** ULX3S.core.count_width / ULX3S.clk_freq > 86400
    assert 2 ** ICEBREAKER.core.count_width / ICEBREAKER.clk_freq > 12 * 3600


def test_icebreaker_build_parameters():
    # A single-click node without the emulator, with the trimmed widths of docs/boards.md.
    soc = ICEBREAKER.soc_params
    core = soc.core
    assert (core.n_channels, core.n_windows, core.n_outputs) == (2, 1, 2)
    assert (core.offset_width, core.count_width, core.seq_width, core.limit_width) == (
        14, 41, 16, 32)
    assert (soc.fifo_depth, soc.max_burst, soc.max_records_per_frame, soc.emulator) == (
        256, 64, 128, False)
    assert ICEBREAKER.synth_opts == ("-dsp",)
    name, plan = _prepare(ICEBREAKER)
    assert f"synth_ice40 -dsp -top {name}" in plan.files[f"{name}.ys"]
    # The ULX3S keeps the defaults.
    assert ULX3S.soc_params.core.n_outputs == 4 and ULX3S.soc_params.emulator


def test_board_rejects_a_bad_pinout():
    pins = tuple(p for p in ULX3S.pins if p.name != "trig[3]")
    with pytest.raises(ValueError, match=r"pinout of 'trig' has bits \[0, 1, 2\]; the core "
                                         r"needs bits 0..3"):
        type(ULX3S)(**{**ULX3S.__dict__, "pins": pins})
    with pytest.raises(ValueError, match="below the required"):
        ULX3S.with_clock(100_000_000)


def test_exploratory_clocks():
    slow = ULX3S.with_clock(30_000_000, exploratory=True)
    assert (slow.clk_freq, slow.min_clk_freq, slow.uart_divisor) == (30_000_000, 30_000_000, 10)
    slow.validate()
    with pytest.raises(ValueError, match="ECP5 PLL cannot make exactly 47 MHz from 25 MHz"):
        ULX3S.with_clock(47_000_000, exploratory=True).validate()
    with pytest.raises(ValueError, match="2.6% off 3000000"):
        ULX3S.with_clock(40_000_000, exploratory=True).validate()
    ICEBREAKER.validate()
    ULX3S.validate()


# The documented pinout (docs/boards.md), written out: signal -> FPGA pin.
ICEBREAKER_PINS = {"clicks_0__b0": "4", "clicks_0__b1": "2", "ready_0__b0": "47",
                   "attempt_0__b0": "43", "herald_0__b0": "38", "gate_0__b0": "34",
                   "trig_0__b0": "42", "trig_0__b1": "36"}
ULX3S_PINS = {"clicks_0__b0": "B11", "clicks_0__b1": "A10", "ready_0__b0": "A9",
              "attempt_0__b0": "C11", "herald_0__b0": "A11", "gate_0__b0": "B10",
              "gate_0__b1": "C10", "trig_0__b0": "A8", "trig_0__b1": "B8",
              "trig_0__b2": "C7", "trig_0__b3": "B6"}


def test_pinout_constraints():
    name, plan = _prepare(ICEBREAKER)
    pcf = plan.files[f"{name}.pcf"]
    for port, pin in ICEBREAKER_PINS.items():
        assert f"set_io herald_{port}__io {pin}\n" in pcf, port
    assert "trig_0__b2" not in pcf          # two trigger outputs on the UP5K
    assert "gate_0__b1" not in pcf          # and one window
    assert "set_io uart_0__rx__io 6\n" in pcf and "set_io uart_0__tx__io 9\n" in pcf
    assert "set_frequency pll.pll_out 48.0\n" in pcf
    name, plan = _prepare(ULX3S)
    lpf = plan.files[f"{name}.lpf"]
    for port, pin in ULX3S_PINS.items():
        assert f'LOCATE COMP "herald_{port}__io" SITE "{pin}";' in lpf, port
    assert 'FREQUENCY NET "pll.pll_out" 125000000.0 HZ;' in lpf


# -- report parsing -------------------------------------------------------------------------

# Trimmed from a nextpnr-ecp5 --report of this design.
NEXTPNR_REPORT = {
    "utilization": {
        "TRELLIS_COMB": {"used": 9731, "available": 83640},
        "TRELLIS_FF": {"used": 5010, "available": 83640},
        "DP16KD": {"used": 9, "available": 208},
        "EHXPLLL": {"used": 1, "available": 4},
        "MULT18X18D": {"used": 0, "available": 156},
    },
    "fmax": {
        "$glbnet$pll.pll_out": {"achieved": 163.45, "constraint": 200.0},
        "$glbnet$clk25_0__io": {"achieved": 500.0, "constraint": 25.0},
    },
    "critical_paths": [
        {"from": "posedge $glbnet$clk25_0__io", "to": "posedge $glbnet$clk25_0__io",
         "path": []},
        {"from": "posedge $glbnet$pll.pll_out", "to": "posedge $glbnet$pll.pll_out",
         "path": [
             {"type": "clk-to-q", "from": {"cell": "soc.core.offset_DFF_Q", "port": "CLK"},
              "to": {"cell": "soc.core.offset_DFF_Q", "port": "Q"}, "delay": 0.52},
             {"type": "routing", "from": {"cell": "soc.core.offset_DFF_Q", "port": "Q"},
              "to": {"cell": "soc.core.cmp_LUT4", "port": "A"}, "delay": 1.75},
             {"type": "logic", "from": {"cell": "soc.core.cmp_LUT4", "port": "A"},
              "to": {"cell": "soc.core.cmp_LUT4", "port": "Z"}, "delay": 0.24},
             {"type": "setup", "from": {"cell": "soc.core.cmp_LUT4", "port": "Z"},
              "to": {"cell": "soc.core.herald_DFF", "port": "DI"}, "delay": 0.05},
         ]},
    ],
}


def test_parse_nextpnr_report():
    fmax, cells, path = parse_nextpnr_report(json.dumps(NEXTPNR_REPORT),
                                             "$glbnet$pll.pll_out")
    assert fmax == {"$glbnet$pll.pll_out": (163.45, 200.0),
                    "$glbnet$clk25_0__io": (500.0, 25.0)}
    assert (cells["TRELLIS_COMB"].used, cells["TRELLIS_COMB"].available) == (9731, 83640)
    assert cells["DP16KD"].used == 9
    assert path == [
        ("soc.core.offset_DFF_Q.CLK", "soc.core.offset_DFF_Q.Q", "clk-to-q", 0.52),
        ("soc.core.offset_DFF_Q.Q", "soc.core.cmp_LUT4.A", "routing", 1.75),
        ("soc.core.cmp_LUT4.A", "soc.core.cmp_LUT4.Z", "logic", 0.24),
        ("soc.core.cmp_LUT4.Z", "soc.core.herald_DFF.DI", "setup", 0.05)]
    # Without a clock named, the one with the least margin is picked.
    assert parse_nextpnr_report(NEXTPNR_REPORT)[2] == path
    with pytest.raises(BuildError, match="nextpnr report is missing or malformed"):
        parse_nextpnr_report({"utilization": {}})


YOSYS_STAT_NEW = """
2.50. Printing statistics.

=== heraldry_icebreaker ===

        +----------Local Count, excluding submodules.
        |
     7999 wires
    19652 wire bits
       58 cells
       14   SB_IO
       17   SB_RAM40_4K
     2158   SB_CARRY
      270   SB_DFF
      207   SB_DFFE
     3303   SB_DFFESR
        2   SB_DFFR
     1205   SB_DFFSR
     6733   SB_LUT4

=== design hierarchy ===
     6733   SB_LUT4
"""

YOSYS_STAT_OLD = """
2.51. Printing statistics.

=== heraldry_ulx3s_85f ===

   Number of wires:               4321
   Number of cells:              14000
     CCU2C                         600
     DP16KD                          9
     LUT4                         8100
     TRELLIS_FF                   5010
"""


def test_parse_yosys_stat():
    cells = parse_yosys_stat("noise\n" + YOSYS_STAT_NEW)
    assert cells["SB_LUT4"] == 6733 and cells["SB_RAM40_4K"] == 17
    assert count_luts_ffs(cells) == (6733, 270 + 207 + 3303 + 2 + 1205)
    cells = parse_yosys_stat(YOSYS_STAT_OLD)
    assert cells["LUT4"] == 8100 and cells["TRELLIS_FF"] == 5010
    assert count_luts_ffs(cells) == (8100 + 2 * 600, 5010)
    with pytest.raises(BuildError, match="no 'stat' section"):
        parse_yosys_stat("Yosys log without statistics")


NEXTPNR_LOG = """Info: Packing constants..
Info: Device utilisation:
Info: \t         ICESTORM_LC:    9899/   5280   187%
Info: \t        ICESTORM_RAM:      17/     30    56%
Info: \t               SB_IO:      15/     39    38%

ERROR: Unable to place cell 'x_LC', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_parse_nextpnr_utilisation():
    cells = parse_nextpnr_utilisation(NEXTPNR_LOG)
    assert list(cells) == ["ICESTORM_LC", "ICESTORM_RAM", "SB_IO"]
    assert (cells["ICESTORM_LC"].used, cells["ICESTORM_LC"].available) == (9899, 5280)
    assert round(cells["ICESTORM_LC"].percent) == 187


@pytest.mark.parametrize("error, detail", [
    ("ERROR: Unable to place cell 'x_LC', no BELs remaining to implement cell type "
     "'ICESTORM_LC'", "ICESTORM_LC 5304 / 5280 (100 %)"),
    ("ERROR: Failed to expand region (0, 0) |_> (25, 31) of 5279 ICESTORM_LCs",
     "nextpnr found no legal placement ('Failed to expand region') with ICESTORM_LC "
     "5279 / 5280 (100 %)"),
    ("ERROR: Unable to find legal placement for all cells, design is probably at "
     "utilisation limit.", "nextpnr found no legal placement ('Unable to find legal "
     "placement') with ICESTORM_LC 5279 / 5280 (100 %)"),
])
def test_a_design_nextpnr_cannot_place_is_a_fit_error(tmp_path, error, detail):
    used = 5304 if "no BELs" in error else 5279
    (tmp_path / "top.tim").write_text(
        "Info: Device utilisation:\n"
        f"Info: \t         ICESTORM_LC:    {used}/   5280   100%\n"
        "Info: \t        ICESTORM_RAM:      17/     30    56%\n"
        "Info: \t        ICESTORM_PLL:       1/      1   100%\n\n" + error + "\n")
    (tmp_path / "top.rpt").write_text(YOSYS_STAT_NEW)
    with pytest.raises(FitError) as info:
        build_module._raise_if_not_fitting(ICEBREAKER, "top", tmp_path)
    assert str(info.value) == (f"icebreaker: the design does not fit the iCE40UP5K: {detail}; "
                               f"after synthesis 6733 LUT4 and 4987 FF.")
    # Any other failure is not one.
    (tmp_path / "top.tim").write_text("ERROR: something else\n")
    build_module._raise_if_not_fitting(ICEBREAKER, "top", tmp_path)


# -- placement seeds -------------------------------------------------------------------------

ULX3S_SCRIPT = """#!/bin/sh
set -e
: ${YOSYS:=yosys}
: ${NEXTPNR_ECP5:=nextpnr-ecp5}
"$YOSYS" -q -l top.rpt top.ys
"$NEXTPNR_ECP5" --quiet --report report.json --timing-allow-fail --seed 1 --router router2 --json top.json
"$ECPPACK" --compress --input top.config --bit top.bit
"""


def test_reseed_script_places_the_same_netlist_with_another_seed():
    assert reseed_script(ULX3S_SCRIPT, 7).splitlines() == [
        "#!/bin/sh", "set -e", ": ${YOSYS:=yosys}", ": ${NEXTPNR_ECP5:=nextpnr-ecp5}",
        '"$NEXTPNR_ECP5" --quiet --report report.json --timing-allow-fail --seed 7 --router '
        'router2 --json top.json',
        '"$ECPPACK" --compress --input top.config --bit top.bit']
    with pytest.raises(BuildError, match="cannot find the one nextpnr command with a --seed"):
        reseed_script(ULX3S_SCRIPT.replace("--seed 1 ", ""), 2)


def test_board_seeds_are_checked():
    assert ULX3S.seeds == (1, 2, 3) and ICEBREAKER.seeds == (1, 2, 3)
    for seeds in ((), (1, 1), (-1,), ("2",)):
        with pytest.raises(ValueError, match=r"ulx3s-85f: seeds .* must be distinct integers"):
            dataclasses.replace(ULX3S, seeds=seeds)


class _FakePlan:
    script = "build_top"

    def extract(self, folder):
        folder.mkdir(parents=True)
        (folder / "build_top.sh").write_text(ULX3S_SCRIPT)


@pytest.mark.parametrize("fmax_by_seed, seed, tried", [
    # Seed 2's router is given up; seed 3 meets timing, so seed 4 is never placed.
    ({1: 120.0, 2: "timeout", 3: 126.5, 4: 130.0}, 3, {1: 120.0, 2: None, 3: 126.5}),
    # None meets: the last seed's placement stays, and each seed's Fmax is reported.
    ({1: 120.0, 2: 121.0, 3: 119.0, 4: 124.9}, 4, {1: 120.0, 2: 121.0, 3: 119.0, 4: 124.9}),
    # The first meets: nothing else runs.
    ({1: 125.0, 2: 130.0, 3: 130.0, 4: 130.0}, 1, {1: 125.0}),
    # Seeds that find no legal placement give way too; the last placed one's bitstream
    # stays when the last seed does not place.
    ({1: "unplaced", 2: 126.0, 3: 130.0, 4: 130.0}, 2, {1: "unplaced", 2: 126.0}),
    ({1: 120.0, 2: "unplaced", 3: 121.0, 4: "unplaced"}, 3,
     {1: 120.0, 2: "unplaced", 3: 121.0, 4: "unplaced"}),
])
def test_a_seed_that_misses_timing_gives_way_to_the_next(tmp_path, monkeypatch, fmax_by_seed,
                                                         seed, tried):
    board = dataclasses.replace(ULX3S, seeds=(1, 2, 3, 4))
    runs = []
    placed = {}

    def run_script(board_, name, folder, script, log_name, timeout):
        text = (folder / script).read_text()
        runs.append((script, '"$YOSYS"' in text, timeout))
        placed_seed = int(text.split("--seed ")[1].split()[0])
        if fmax_by_seed[placed_seed] == "timeout":
            raise subprocess.TimeoutExpired(script, timeout)
        if fmax_by_seed[placed_seed] == "unplaced":
            raise FitError("no legal placement", board_.name, {}, 1, 1, placement=True)
        placed["seed"] = placed_seed

    def read_build(board_, name, folder, digest, seconds):
        return BuildResult(board=board_.name, target_mhz=125.0,
                           fmax_mhz=fmax_by_seed[placed["seed"]], luts=1, ffs=1,
                           brams=Utilisation(1, 208), cells={}, build_seconds=seconds,
                           bitstream=str(folder / "top.bit"), digest=digest)

    monkeypatch.setattr(build_module, "_run_script", run_script)
    monkeypatch.setattr(build_module, "read_build", read_build)
    result = build_module._run_build(board, "top", _FakePlan(), tmp_path / "out", "d")
    assert (result.seed, result.seeds_tried) == (seed, tried)
    assert result.fmax_mhz == tried[seed] and result.timing_met == (tried[seed] >= 125)
    expected = [("build_top.sh", True, None)] + [
        (f"reseed_{s}.sh", False, RESEED_TIMEOUT_S if s != 4 else None) for s in tried if s > 1]
    assert runs == expected
    if "unplaced" in tried.values():
        assert ": no legal placement" in format_result(result)
        assert f"the bitstream is seed {seed}'s" in format_result(result)
    elif len(tried) > 1:
        assert "seeds      1: 120.00 MHz, 2: " in format_result(result)
        assert f"the bitstream is seed {seed}'s" in format_result(result)
        if not result.timing_met:
            assert "Placement seeds tried: 1: 120.00 MHz, 2: 121.00 MHz, 3: 119.00 MHz, " \
                   "4: 124.90 MHz." in timing_message(result)
        else:
            assert f"2: given up after {RESEED_TIMEOUT_S} s" in format_result(result)
    else:
        assert "seeds" not in format_result(result)


def test_a_design_no_seed_can_place_or_too_big_for_the_device_is_a_fit_error(tmp_path,
                                                                                monkeypatch):
    board = dataclasses.replace(ICEBREAKER, seeds=(1, 2))
    runs = []

    def run_script(board_, name, folder, script, log_name, timeout):
        runs.append(script)
        raise FitError("icebreaker: the design does not fit the iCE40UP5K: nextpnr found no "
                       "legal placement; after synthesis 1 LUT4 and 1 FF.", board_.name, {}, 1,
                       1, placement=placement)

    monkeypatch.setattr(build_module, "_run_script", run_script)
    placement = True
    with pytest.raises(FitError) as info:
        build_module._run_build(board, "top", _FakePlan(), tmp_path / "a", "d")
    assert str(info.value).endswith("Placement seeds tried: 1: no legal placement, 2: no "
                                    "legal placement.")
    assert info.value.placement and runs == ["build_top.sh", "reseed_2.sh"]
    # A resource short: no other seed is tried.
    placement, runs[:] = False, []
    with pytest.raises(FitError):
        build_module._run_build(board, "top", _FakePlan(), tmp_path / "b", "d")
    assert runs == ["build_top.sh"]


# -- bitstreams -----------------------------------------------------------------------------
# One test and one build per board (so that two workers never wait on the same build), cached
# by content hash: an unchanged design is found at once.

def test_board_ulx3s(capsys):
    """The ULX3S build runs from the pip toolchain and its report is parsed; a second build is
    a cache hit; `heraldry build` prints the report and exits 0 if timing is met, 2 if not;
    and timing is met at the target clock."""
    result = build_board(ULX3S, check_timing=False)
    assert result.target_mhz == 125.0
    assert 0 < result.fmax_mhz < 1000
    assert result.brams == result.cells["DP16KD"] and result.brams.used > 0
    assert 1000 < result.luts < 84_000 and 1000 < result.ffs < 84_000
    assert result.cells["TRELLIS_FF"].used > 0 and result.cells["EHXPLLL"].used == 1
    for bel, use in result.cells.items():
        assert use.used <= use.available, bel
    assert result.critical_path and all(step[2] for step in result.critical_path)
    assert result.bitstream.endswith(".bit")
    started = time.monotonic()
    again = build_board(ULX3S, check_timing=False)
    assert again.cached and time.monotonic() - started < 60
    assert (again.fmax_mhz, again.luts, again.ffs, again.bitstream) == (
        result.fmax_mhz, result.luts, result.ffs, result.bitstream)

    from heraldry.host.cli import main
    capsys.readouterr()
    status = main(["build", "ulx3s-85f"])
    captured = capsys.readouterr()
    assert status == (0 if result.timing_met else 2)
    assert f"clock      target 125 MHz, achieved Fmax {result.fmax_mhz:.2f} MHz" in captured.out
    assert "(cached)" in captured.out
    if not result.timing_met:
        assert "timing NOT met: the core clock reaches" in captured.err
        assert "Critical path (" in captured.err

    build_board(ULX3S)          # checks timing: raises TimingError below the target clock


def test_board_icebreaker():
    """The iCEBreaker build fits the UP5K and meets 48 MHz; its report is parsed."""
    result = build_board(ICEBREAKER)     # raises FitError, or TimingError below 48 MHz
    assert result.brams == result.cells["ICESTORM_RAM"] and result.brams.used > 0
    assert result.bitstream.endswith(".bin") and result.seed in ICEBREAKER.seeds
    for bel, use in result.cells.items():
        assert use.used <= use.available, bel
    assert 1000 < result.luts < 5280 and 1000 < result.ffs < 5280
    assert result.timing_met and result.target_mhz == 48.0
