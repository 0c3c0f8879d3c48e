"""Byte transports to a device: ``serial://``, ``tcp://``, ``verilator://`` and ``sim://``.

A transport moves bytes and nothing else; framing lives in :mod:`heraldry.host.framing`.
Every transport raises :class:`~heraldry.host.errors.LinkError` when the link dies.
"""

import socket
import threading
from urllib.parse import parse_qs, urlparse

from .errors import LinkError

__all__ = ["Transport", "TcpTransport", "SerialTransport", "VirtualBoardTransport",
           "open_transport"]


class Transport:
    """Base class.

    Attributes
    ----------
    url : str
    response_timeout : float
        Seconds (wall clock) the controller waits for a response before retrying.
    """
    url = ""
    response_timeout = 1.0

    def write(self, data: bytes):
        raise NotImplementedError

    def read(self, timeout: float) -> bytes:
        """Bytes received within ``timeout`` seconds (``b""`` if none)."""
        raise NotImplementedError

    def close(self):
        pass


class _BackgroundReader(Transport):
    """A thread drains the link into memory all the time, so that no operating-system
    buffer overflows while the caller is busy elsewhere (at 3 Mbaud a 4 KiB buffer lasts
    14 ms). A link error seen by the thread is raised by the next :meth:`read`, after the
    bytes that arrived before it."""

    def _start_reader(self):
        self._received = bytearray()
        self._cond = threading.Condition()
        self._error = None
        self._closing = False
        self._thread = threading.Thread(target=self._pump, name=f"reader {self.url}",
                                        daemon=True)
        self._thread.start()

    def _read_once(self) -> bytes:
        """Block for a short while; return what arrived (maybe nothing) or raise
        :class:`LinkError`."""
        raise NotImplementedError

    def _pump(self):
        while not self._closing:
            try:
                data = self._read_once()
            except Exception as exc:        # noqa: BLE001 -- handed to the reader
                if self._closing:
                    return
                error = exc if isinstance(exc, LinkError) else LinkError(
                    f"{self.url}: link lost: {exc}")
                with self._cond:
                    self._error = error
                    self._cond.notify_all()
                return
            if data:
                with self._cond:
                    self._received += data
                    self._cond.notify_all()

    def read(self, timeout):
        with self._cond:
            if not self._received and self._error is None and timeout > 0:
                self._cond.wait(timeout)
            if self._received:
                data = bytes(self._received)
                self._received.clear()
                return data
            if self._error is not None:
                raise self._error
            return b""

    def _stop_reader(self):
        self._closing = True


class TcpTransport(_BackgroundReader):
    """``tcp://HOST:PORT``: a client socket (the virtual board is the server).

    ``response_timeout`` (seconds) overrides the default for slow servers, such as a
    simulator far slower than real time.
    """

    response_timeout = 2.0

    def __init__(self, host, port, *, connect_timeout=5.0, response_timeout=None):
        self.url = f"tcp://{host}:{port}"
        if response_timeout is not None:
            self.response_timeout = response_timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise LinkError(f"{self.url}: cannot connect: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(0.1)
        self._start_reader()

    def _read_once(self):
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return b""
        except OSError as exc:
            raise LinkError(f"{self.url}: link lost: {exc}") from exc
        if not data:
            raise LinkError(f"{self.url}: the device closed the connection")
        return data

    def write(self, data):
        if self._error is not None:
            raise self._error
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise LinkError(f"{self.url}: link lost while sending: {exc}") from exc

    def close(self):
        self._stop_reader()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self._thread.join(1.0)


class SerialTransport(_BackgroundReader):
    """``serial:///dev/ttyUSB1?baud=3000000``: a USB-serial port (8N1, no flow control)."""

    def __init__(self, port, baud=3_000_000):
        try:
            import serial
        except ImportError as exc:
            raise LinkError("serial:// needs pyserial: pip install pyserial") from exc
        self._serial_exc = serial.SerialException
        self.url = f"serial://{port}?baud={baud}"
        try:
            self.port = serial.Serial(port, baudrate=baud, timeout=0.05, write_timeout=2.0)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"{self.url}: cannot open: {exc}") from exc
        self.port.reset_input_buffer()
        self._start_reader()

    def _read_once(self):
        try:
            return self.port.read(max(1, self.port.in_waiting))
        except (self._serial_exc, OSError, TypeError) as exc:
            raise LinkError(f"{self.url}: link lost: {exc}") from exc

    def write(self, data):
        if self._error is not None:
            raise self._error
        try:
            self.port.write(data)
        except (self._serial_exc, OSError) as exc:
            raise LinkError(f"{self.url}: link lost while sending: {exc}") from exc

    def close(self):
        self._stop_reader()
        self._thread.join(1.0)
        try:
            self.port.close()
        except Exception:        # noqa: BLE001 -- closing a dead port
            pass


class VirtualBoardTransport(TcpTransport):
    """``verilator://``: builds the virtual board if needed, starts it on a free port of
    127.0.0.1, connects, and stops it on :meth:`close`."""

    def __init__(self, **kwargs):
        from ..sim.virtual_board import VirtualBoardProcess
        self.board = VirtualBoardProcess()
        try:
            super().__init__("127.0.0.1", self.board.port, **kwargs)
        except BaseException:
            self.board.stop()
            raise
        self.url = "verilator://"

    def close(self):
        super().close()
        self.board.stop()


def _params_from_query(query):
    """``sim://`` options: channels, windows, outputs, clk (Hz), fifo, frame (records per
    event frame)."""
    from ..gateware.layouts import CoreParameters
    from ..gateware.regmap import SocParameters
    q = {k: v[-1] for k, v in parse_qs(query).items()}
    known = {"channels", "windows", "outputs", "clk", "fifo", "frame"}
    unknown = set(q) - known
    if unknown:
        raise ValueError(f"sim:// options {sorted(unknown)} unknown; known: {sorted(known)}")
    core = CoreParameters(n_channels=int(q.get("channels", 2)),
                          n_windows=int(q.get("windows", 2)),
                          n_outputs=int(q.get("outputs", 4)))
    return SocParameters(core=core, clk_freq=int(float(q.get("clk", 100e6))),
                         fifo_depth=int(q.get("fifo", 256)),
                         max_records_per_frame=int(q.get("frame", 128)))


def open_transport(url, **kwargs) -> Transport:
    """Open ``url``: ``serial:///dev/ttyUSB1?baud=3000000``, ``tcp://HOST:PORT`` or
    ``sim://[?channels=2&windows=2&...]`` (keyword ``click_source`` for ``sim://``)."""
    parsed = urlparse(url)
    if parsed.scheme == "tcp":
        if not parsed.hostname or not parsed.port:
            raise ValueError(f"{url}: expected tcp://HOST:PORT")
        return TcpTransport(parsed.hostname, parsed.port, **kwargs)
    if parsed.scheme == "serial":
        q = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if not parsed.path:
            raise ValueError(f"{url}: expected serial:///dev/PORT?baud=N")
        return SerialTransport(parsed.path, int(q.get("baud", 3_000_000)), **kwargs)
    if parsed.scheme == "verilator":
        if parsed.netloc or parsed.path not in ("", "/") or parsed.query:
            raise ValueError(f"{url}: expected verilator:// (no host, path or options)")
        return VirtualBoardTransport(**kwargs)
    if parsed.scheme == "sim":
        from .simlink import SimTransport
        return SimTransport(_params_from_query(parsed.query), **kwargs)
    raise ValueError(f"{url}: unknown scheme {parsed.scheme!r}; use serial://, tcp://, "
                     f"verilator:// or sim://")
