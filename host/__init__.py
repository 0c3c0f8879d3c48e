"""Host library: talk to a heraldry controller from Python.

>>> from heraldry.host import Controller, Config, SingleClick
>>> with Controller.open("sim://") as ctl:            # or serial://..., tcp://...
...     ctl.configure(Config(period_ns=500, windows_ns=[(100, 100)]))
...     result = ctl.run(attempts=20)
"""

from .config import Config, PROTOCOLS
from .controller import Controller, RequestError, Status
from .device import DeviceError, DeviceInfo
from .errors import ConfigError, HeraldryError, LinkError, LinkWarning, RunActiveError
from .protocols import BarrettKok, Custom, Protocol, SingleClick
from .records import decode_records, encode_records, record_dtype
from .results import Counters, LinkReport, Recording, RunResult, load_records, save_records

__all__ = ["Controller", "Config", "PROTOCOLS", "RequestError", "Status", "DeviceInfo",
           "DeviceError", "ConfigError", "HeraldryError", "LinkError", "LinkWarning",
           "RunActiveError",
           "Protocol", "SingleClick", "BarrettKok", "Custom", "decode_records",
           "encode_records", "record_dtype", "Counters", "LinkReport", "RunResult",
           "Recording", "save_records", "load_records"]
