"""The virtual board: the whole SoC Verilated and served over TCP on 127.0.0.1.

The SoC's byte stream is bridged to a socket by ``vboard.cpp`` (bounded buffers with
back-pressure both ways), its detector inputs are left idle and its link emulator provides
the clicks, so the same host code that drives a real board drives this one:
``Controller.open("verilator://")`` builds it if needed, starts it, connects and stops it on
close; ``heraldry sim --port N`` serves it to other clients.

Builds are cached under :func:`heraldry.sim.toolchain.build_root` by a hash of the Verilog,
the bridge source and the build flags.
"""

import subprocess
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..gateware.regmap import SocParameters
from ..gateware.soc import HeraldSoC
from .cocotb_runner import build_program, verilator_verilog

__all__ = ["VirtualBoardTop", "build_virtual_board", "VirtualBoardProcess",
           "DEFAULT_VIRTUAL_BOARD"]

BRIDGE_SOURCE = Path(__file__).with_name("vboard.cpp")
#: The virtual board's build parameters: the SoC as a board would carry it, with the link
#: emulator, at a nominal 200 MHz clock.
DEFAULT_VIRTUAL_BOARD = SocParameters(clk_freq=200_000_000)


class VirtualBoardTop(wiring.Component):
    """The SoC with flat byte-stream ports (Verilator mangles double underscores), idle
    detector inputs (the emulator replaces them) and ``ready`` held high.

    Built for simulation speed, without changing what the SoC does:

    * No reset input: the board starts in its initial state, as an FPGA does after
      configuration (the SoC never needs a reset after that).
    * No logic depends on an input before a clock edge, so Verilator has nothing to evaluate
      between edges: ``rx`` goes through a one-byte register whose ``rx_ready`` depends on
      state only, and ``tx_ready`` is registered. ``tx_ready`` therefore promises room for the
      byte of this cycle and of the next one; ``tx_valid`` is high only in a cycle that
      transfers a byte.
    * The host link (the SoC's ``link_domain``, with the two bridge registers) runs on
      ``link_clk``, the same clock gated by the harness to the cycles where
      ``link_busy | rx_valid`` is high; in the others it would change nothing, and an idle
      link then costs no simulation time.
    """

    clk: In(1)
    link_clk: In(1)
    link_busy: Out(1)
    rx_valid: In(1)
    rx_ready: Out(1)
    rx_data: In(8)
    tx_valid: Out(1)
    tx_ready: In(1)
    tx_data: Out(8)
    running: Out(1)

    def __init__(self, params: SocParameters):
        self.params = params
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain(reset_less=True)
        m.domains.link = link = ClockDomain(reset_less=True)
        m.d.comb += [sync.clk.eq(self.clk), link.clk.eq(self.link_clk)]
        m.submodules.soc = soc = HeraldSoC(self.params, link_domain="link")
        m.d.comb += self.link_busy.eq(soc.link_busy)

        rx_full = Signal()
        rx_byte = Signal(8)
        m.d.comb += [
            soc.rx.valid.eq(rx_full),
            soc.rx.payload.eq(rx_byte),
            self.rx_ready.eq(~rx_full | soc.rx.ready),
        ]
        with m.If(self.rx_ready):
            m.d.link += [rx_full.eq(self.rx_valid), rx_byte.eq(self.rx_data)]

        tx_room = Signal()
        m.d.link += tx_room.eq(self.tx_ready)
        m.d.comb += [
            soc.tx.ready.eq(tx_room),
            # A transfer happens only at a link clock edge.
            self.tx_valid.eq(soc.tx.valid & tx_room & soc.link_busy),
            self.tx_data.eq(soc.tx.payload),
        ]

        m.d.comb += [
            soc.clicks.eq(0),
            soc.ready.eq(1),
            self.running.eq(soc.running),
        ]
        return m


def build_virtual_board(params: SocParameters = DEFAULT_VIRTUAL_BOARD) -> Path:
    """Build (or reuse) the virtual board; returns the executable. The build is
    profile-guided, trained on an emulated run (about 15 % faster ticking)."""
    text = verilator_verilog(VirtualBoardTop(params), "virtual_board")
    return build_program(text, "virtual_board", BRIDGE_SOURCE, kind="vboard",
                         train=_train)


def _train(binary):
    """The profile-guided build's training load: configuration and an emulated run with
    heralds, diagnostics and event frames."""
    from ..host.config import Config
    from ..host.controller import Controller
    from ..host.emulator import EmulatorSettings, EmulatorWindow

    with VirtualBoardProcess(binary=binary, max_seconds=300) as board, \
            Controller.open(board.url) as dev:
        ns = 1e9 / dev.device.clk_freq
        dev.configure(Config(period_ns=100 * ns, windows_ns=[(40 * ns, 8 * ns)],
                             protocol="single-click", diagnostic=True))
        dev.configure_emulator(EmulatorSettings(
            windows=[EmulatorWindow(40 * ns, 4 * ns, {1: 0.01, 2: 0.01})],
            dark_rate_hz=(1e5, 1e5)))
        dev.run(attempts=20_000)


class VirtualBoardProcess:
    """A running virtual board. Use as a context manager, or call :meth:`stop`.

    Parameters
    ----------
    port : int
        TCP port on 127.0.0.1; 0 picks a free one (see :attr:`port`).
    params : SocParameters
    max_seconds : float
        Stop after this long (0: run until stopped).
    binary : Path
        A virtual board executable to run instead of the one built for ``params``.
    """

    def __init__(self, port=0, params: SocParameters = DEFAULT_VIRTUAL_BOARD,
                 max_seconds=0.0, binary=None):
        binary = binary or build_virtual_board(params)
        args = [str(binary), "--port", str(port)]
        if max_seconds:
            args += ["--max-seconds", str(max_seconds)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        if not line.startswith("listening "):
            self.process.kill()
            err = self.process.stderr.read()
            raise RuntimeError(f"the virtual board did not start: {line!r} {err.strip()}")
        self.port = int(line.split()[1])
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.stats = None

    def stop(self, timeout=5.0):
        """Stop the process; returns the ``(cycles, tick_seconds, tick_cpu_seconds)`` it
        reports: cycles ticked, wall and CPU time spent ticking them."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        err = self.process.stderr.read() if self.process.stderr else ""
        for line in err.splitlines():
            if line.startswith("cycles "):
                parts = line.split()
                self.stats = (int(parts[1]), float(parts[3]), float(parts[5]))
        return self.stats

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def wait(self):
        """Block until the process ends (``heraldry sim`` in the foreground)."""
        try:
            while self.process.poll() is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        return self.stop()


def add_parser(subparsers):
    """``heraldry sim --port N``: serve the virtual board to other clients."""
    parser = subparsers.add_parser(
        "sim", help="serve the virtual board on 127.0.0.1",
        description="Build (if needed) and run the virtual board, serving its byte stream "
                    "on 127.0.0.1:PORT until interrupted. Connect with "
                    "Controller.open('tcp://127.0.0.1:PORT').")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.set_defaults(handler=_serve)


def _serve(args):
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"--port = {args.port}: must be 0..65535")
    print("building the virtual board (cached after the first build) ...", flush=True)
    board = VirtualBoardProcess(port=args.port)
    print(f"virtual board listening on 127.0.0.1:{board.port} (Ctrl-C stops it)", flush=True)
    stats = board.wait()
    if stats:
        cycles, seconds, _ = stats
        print(f"ticked {cycles} cycles in {seconds:.2f} s")
    return 0
