"""Where the virtual board's simulation time goes: instructions per cycle by gateware module
and by signal, counted by callgrind (valgrind) during the ``vboard`` bench's emulated run.

``python -m heraldry.sim.bench vboard-profile`` (needs ``valgrind``). The board is built as
the virtual board is (without the profile-guided step, with debug line tables), run under
callgrind with instrumentation switched on for the run only, and every line of the C++ that
Verilator generated is charged to the signal its statement assigns; conditions and
temporaries go to the statement that follows them. Instructions are counted, not time, so
figures do not depend on the load of the machine.
"""

import re
import shlex
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from .cocotb_runner import build_program, verilator_verilog
from .virtual_board import (BRIDGE_SOURCE, DEFAULT_VIRTUAL_BOARD, VirtualBoardProcess,
                            VirtualBoardTop)

__all__ = ["profile_vboard"]

TOP = "virtual_board"
#: Charged by file rather than by statement.
OVERHEAD = {"verilated_funcs.h": "(Verilator wide-vector helpers)",
            "vboard.cpp": "(bridge)"}


def profile_vboard(attempts=10_000, signals=25):
    """Profile an emulated run of ``attempts`` attempts; returns figures for the bench:
    instructions per cycle in all, by module and for the ``signals`` costliest signals."""
    from .bench import configure_bench_run
    from ..host.controller import Controller

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise RuntimeError("vboard-profile needs valgrind (callgrind) on PATH")
    verilog_text = verilator_verilog(VirtualBoardTop(DEFAULT_VIRTUAL_BOARD), TOP, src=True)
    # Valgrind does not know every instruction -march=native may pick (AVX-512).
    binary = build_program(verilog_text, TOP, BRIDGE_SOURCE, kind="vboard-profile",
                           extra_args=["-CFLAGS", "-g -march=x86-64-v2"])
    with tempfile.TemporaryDirectory(prefix="heraldry-profile-") as tmp:
        output = Path(tmp) / "callgrind.out"
        wrapper = Path(tmp) / "vboard"
        wrapper.write_text(f"#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                           f"--callgrind-out-file={shlex.quote(str(output))} "
                           f"{shlex.quote(str(binary))} \"$@\"\n")
        wrapper.chmod(0o755)
        board = VirtualBoardProcess(binary=wrapper)
        try:
            with Controller.open(board.url) as dev:
                configure_bench_run(dev)
                pid = str(board.process.pid)
                subprocess.run(["callgrind_control", "-i", "on", pid], check=True,
                               capture_output=True)
                dev.run(attempts=attempts)
                subprocess.run(["callgrind_control", "-i", "off", pid], check=True,
                               capture_output=True)
        finally:
            board.stop(timeout=120)          # callgrind writes its counts on exit
        costs, evals = _line_costs(output)
    if not evals:
        raise RuntimeError("callgrind counted no model evaluation during the run")
    # One evaluation per cycle, or two where the bridge evaluates the falling edge (a model
    # without the clock level it notes instead; see vboard.cpp).
    root_header = (binary.parent / "obj" / f"V{TOP}___024root.h").read_text()
    cycles = evals / (1 if "__Vtrigprevexpr___TOP__clk__0;" in root_header else 2)
    by_signal = _charge_to_signals(costs, binary.parent / "obj")
    sources = _signal_sources(verilog_text)
    by_module = Counter()
    for signal, ir in by_signal.items():
        by_module[signal if signal.startswith("(") else signal.rpartition(".")[0] or "(top)"] \
            += ir
    figures = {"cycles": int(cycles),
               "instructions_per_cycle": sum(costs.values()) / cycles}
    for module, ir in by_module.most_common():
        figures[f"module {module}"] = ir / cycles
    for signal, ir in by_signal.most_common(signals):
        source = sources.get(signal)
        figures[f"signal {signal}" + (f" ({source})" if source else "")] = ir / cycles
    return figures


def _line_costs(path):
    """Exclusive instructions by (file, line), and the number of model evaluations."""
    names = {}

    def name(kind, text):
        found = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not found:
            return text
        if found.group(2) is not None:
            names[kind, found.group(1)] = found.group(2)
        return names[kind, found.group(1)]

    costs = Counter()
    evals = 0
    source = callee = None
    line = 0
    call_follows = False
    with open(path) as lines:
        for text in lines:
            text = text.rstrip("\n")
            if text.startswith("fl="):
                source = name("fl", text[3:])
            elif text.startswith(("fi=", "fe=")):
                source = name("fl", text[3:])
            elif text.startswith(("cfi=", "cfl=")):
                name("fl", text[4:])
            elif text.startswith("fn="):
                name("fn", text[3:])
            elif text.startswith("cfn="):
                callee = name("fn", text[4:])
            elif text.startswith("calls="):
                if callee.startswith(f"V{TOP}___024root___eval("):
                    evals += int(text[6:].split()[0])
                call_follows = True
            elif text and (text[0].isdigit() or text[0] in "+-*"):
                position, *cost = text.split()
                if position == "*":
                    pass
                elif position[0] in "+-":
                    line += int(position)
                else:
                    line = int(position)
                if call_follows:        # a call's inclusive cost: counted in the callee
                    call_follows = False
                elif cost:
                    costs[source, line] += int(cost[0])
    return costs, evals


_ASSIGNED = re.compile(r"(?:vlSelfRef\.)?(\w+?)(?:\[[^\]]*\])*\s*(?:=|\[|$)")


def _charge_to_signals(costs, obj_dir):
    """Instructions by hierarchical signal name (``soc.core.level``)."""
    charged = Counter()
    model = {}
    for path in obj_dir.glob(f"V{TOP}___024root__*.cpp"):
        if "Slow" not in path.name:
            model[str(path)] = _statement_owners(path.read_text().splitlines())
    for (source, line), ir in costs.items():
        owners = model.get(str(Path(source).resolve())) if source else None
        if owners is not None:
            charged[owners.get(line, "(Verilator scheduler)")] += ir
        else:
            base = Path(source or "?").name
            charged[OVERHEAD.get(base, "(runtime library)")] += ir
    return charged


def _statement_owners(lines):
    """Map each line of generated C++ to the signal its statement assigns."""
    owners = [None] * (len(lines) + 1)
    current = None
    for number, text in enumerate(lines, 1):
        text = text.strip()
        assigned = _ASSIGNED.match(text) if re.match(r"[A-Za-z_]", text) else None
        if assigned and not text.startswith(("if", "else", "return", "for", "while")):
            variable = assigned.group(1)
            current = (_demangle(variable.split(f"{TOP}__DOT__", 1)[1])
                       if f"{TOP}__DOT__" in variable else None)
            owners[number] = current
        elif text and text[0] in "=&|(?:+-^<>*~)[!":     # continuation of the statement
            owners[number] = current
        else:
            current = None
    following = "(Verilator scheduler)"
    for number in range(len(lines), 0, -1):
        if owners[number] is None:
            owners[number] = following
        else:
            following = owners[number]
        if re.match(rf"\w+ V{TOP}___024root___\w+\(", lines[number - 1]):
            following = "(Verilator scheduler)"
    return dict(enumerate(owners))


def _demangle(name):
    """Verilator's C++ name of a signal back to ``instance.path.signal``."""
    parts = name.split("__DOT__")
    return _readable(".".join(
        re.sub(r"__0([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), part)
        for part in parts))


def _readable(name):
    """A flattened design's temporary, ``$flatten\\soc.\\core.$12``, as ``soc.core.$12``."""
    return name[len("$flatten"):].replace("\\", "") if name.startswith("$flatten") else name


def _signal_sources(verilog_text):
    """Where each signal comes from, by hierarchical name: its source location
    (``core.py:123``) and, for Amaranth's anonymous next-state signals (``$N``), the register
    they feed."""
    sources = {}
    module = src = None
    for text in verilog_text.splitlines():
        text = text.strip()
        found = re.match(r"module \\?(\S+)", text)
        if found:
            module = ".".join(found.group(1).split(".")[1:])
            continue
        attribute = re.fullmatch(r'\(\* src = "([^"]*)" \*\)', text)
        if attribute:
            src = _short(attribute.group(1))
            continue
        declared = re.match(r"(?:wire|reg)\s+(?:\[[^\]]*\]\s*)?\\?(\S+)\s*(?:=.*)?;", text)
        assigned = re.match(r'assign \\?(\S+)\s*=.*?\(\* src = "([^"]*)" \*\)', text)
        registered = re.fullmatch(r"\\?(\S+)\s+<= \\(\S*\$\d+) ;", text)
        if declared and src:
            sources[_qualified(module, declared.group(1))] = src
        elif assigned:
            sources.setdefault(_qualified(module, assigned.group(1)), _short(assigned.group(2)))
        elif registered:
            register = registered.group(1)
            sources[_qualified(module, registered.group(2))] = (
                f"next {register}" + (f", {src}" if src else ""))
        if not text.startswith("always"):
            src = None
    return sources


def _qualified(module, signal):
    signal = _readable(signal)
    return f"{module}.{signal}" if module else signal


def _short(location):
    """``/path/to/gateware/core.py:12|...`` -> ``gateware/core.py:12``."""
    path, _, line = location.split("|")[0].rpartition(":")
    return "/".join(Path(path).parts[-2:]) + ":" + line
