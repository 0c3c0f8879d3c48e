"""Exceptions the host library raises."""

__all__ = ["HeraldryError", "ConfigError"]


class HeraldryError(Exception):
    """Base class of heraldry's errors."""


class ConfigError(HeraldryError, ValueError):
    """A configuration value does not fit the device: names the field, the value and the limit."""

    def __init__(self, field, value, limit):
        self.field, self.value, self.limit = field, value, limit
        super().__init__(f"{field} = {value!r}: {limit}")


class RunActiveError(HeraldryError):
    """A write to registers written only while no run is active (the configuration and the
    decision table, which the device reads throughout a run) while a run is active. The
    Controller checks before it writes anything; the device itself refuses such a write
    request whole (ERROR RUN_ACTIVE, counted in ``link.rx_refused``)."""

    def __init__(self, what):
        self.what = what
        super().__init__(f"{what}: a run is active, and the configuration and the decision "
                         f"table are written only while no run is active; stop() the run or "
                         f"wait for its end first")


class LinkError(HeraldryError, ConnectionError):
    """The link to the device failed: it closed, or the device stopped answering."""


class LinkWarning(UserWarning):
    """Data was lost on the way (sequence gaps, CRC errors, device-side drops); the counts
    are on the result as well."""


__all__ += ["LinkError", "LinkWarning", "RunActiveError"]
