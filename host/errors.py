"""Exceptions the host library raises."""

__all__ = ["HeraldryError", "ConfigError"]


class HeraldryError(Exception):
    """Base class of heraldry's errors."""


class ConfigError(HeraldryError, ValueError):
    """A configuration value does not fit the device: names the field, the value and the limit."""

    def __init__(self, field, value, limit):
        self.field, self.value, self.limit = field, value, limit
        super().__init__(f"{field} = {value!r}: {limit}")


class LinkError(HeraldryError, ConnectionError):
    """The link to the device failed: it closed, or the device stopped answering."""


class LinkWarning(UserWarning):
    """Data was lost on the way (sequence gaps, CRC errors, device-side drops); the counts
    are on the result as well."""


__all__ += ["LinkError", "LinkWarning"]
