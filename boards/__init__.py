"""Board support: platforms, PLLs, pinouts, the board top, and the build and flash commands."""

from .board import Board, BoardTop, Pin
from .frontend import FRONTEND_LATENCY, OUTPUT_LATENCY, FrontEnd

__all__ = ["Board", "BoardTop", "Pin", "FrontEnd", "FRONTEND_LATENCY", "OUTPUT_LATENCY",
           "get_board"]


def _boards():
    # Imported here: each needs amaranth-boards, an optional dependency.
    from .icebreaker import ICEBREAKER
    from .ulx3s import ULX3S_85F
    return {board.name: board for board in (ICEBREAKER, ULX3S_85F)}


BOARD_NAMES = ("icebreaker", "ulx3s-85f")
__all__ += ["BOARD_NAMES"]


def get_board(name) -> Board:
    """The :class:`Board` called ``name``; raises ``ValueError`` listing the known ones."""
    if name not in BOARD_NAMES:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(BOARD_NAMES)}")
    try:
        boards = _boards()
    except ImportError as exc:
        raise RuntimeError(f"board support needs amaranth-boards ({exc}): "
                           f"pip install 'heraldry[boards]'") from exc
    return boards[name]
