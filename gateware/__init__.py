"""Amaranth gateware of heraldry."""

from .core import HeraldCore
from .layouts import CoreParameters, Reason, RecordKind

__all__ = ["HeraldCore", "CoreParameters", "Reason", "RecordKind"]
