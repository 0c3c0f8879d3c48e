"""The host's handle on one device: discover it, configure it, run it, read it."""

import time
import warnings

import numpy as np

from ..gateware.layouts import Reason, RecordKind
from ..gateware.regmap import (CONTROL_RESEED, CONTROL_SNAPSHOT, CONTROL_START, CONTROL_STOP,
                               ID_WORDS,
                               WORD_BITS)
from ..sim.golden import CoreConfig
from .config import Config
from .device import DeviceInfo
from .errors import ConfigError, HeraldryError, LinkError, LinkWarning, RunActiveError
from .framing import ErrorCode, FrameDecoder, FrameLimits, FrameType, encode_frame
from .records import PAD, decode_records, record_dtype
from .results import Counters, LinkReport, RunResult, wilson_interval
from .transport import Transport, open_transport

__all__ = ["Controller", "RequestError", "Status"]


class RequestError(HeraldryError):
    """The device rejected a request (after retries, for transient errors)."""

    def __init__(self, request, code):
        self.code = code
        super().__init__(f"{request}: device answered {ErrorCode(code).name}")


class Status:
    """``running``, ``recal``, ``reason`` (of the last run's end), ``runs`` (ended since
    reset) and ``next_seq`` (sequence number of the next record)."""

    def __init__(self, running, recal, reason, runs, next_seq):
        self.running, self.recal, self.runs = bool(running), bool(recal), runs
        self.reason = Reason(reason)
        self.next_seq = next_seq

    def __repr__(self):
        return (f"Status(running={self.running}, recal={self.recal}, "
                f"reason={self.reason.name}, runs={self.runs}, next_seq={self.next_seq})")


class Controller:
    """A heralding controller, over any transport.

    Use :meth:`open` with a URL (``serial:///dev/ttyUSB1?baud=3000000``,
    ``tcp://127.0.0.1:PORT``, ``sim://``); it identifies the device before returning. The
    controller is a context manager that closes the link.

    Requests are retried (``retries`` times) when the device reports a damaged request or
    does not answer in time; a write is applied whole or not at all, so a retry is safe,
    except for START: a START whose acknowledgement is lost is sent again only if the
    device's status shows it did not take it (counted in ``lost_acks`` if it did).
    """

    def __init__(self, transport: Transport, *, retries=3):
        self.transport = transport
        self.retries = retries
        self.decoder = FrameDecoder()
        self.device: DeviceInfo = None
        self.config: Config = None
        self.core_config: CoreConfig = None
        self.table = None
        self.emulator = None
        self._tag = 0
        self._event_chunks = []
        self._next_seq = None
        self.seq_gaps = 0
        self.request_retries = 0
        self.stale_responses = 0
        #: Requests the device applied although their response never arrived.
        self.lost_acks = 0
        #: Records that arrived before the last run() started (from earlier activity).
        self.backlog = None

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def open(cls, url, *, retries=3, **kwargs):
        """Connect to ``url`` and identify the device. ``sim://`` takes ``click_source=``."""
        transport = open_transport(url, **kwargs)
        controller = cls(transport, retries=retries)
        try:
            controller.identify()
        except BaseException:
            transport.close()
            raise
        return controller

    def close(self):
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- frames -----------------------------------------------------------------------------
    def _receive(self, timeout):
        """Read once from the transport; queue event records; return responses."""
        data = self.transport.read(timeout)
        if not data:
            return []
        responses, events = self.decoder.feed(data)
        self._event_chunks += events
        return responses

    def _request(self, frame_type, body, expect, what, applied=None):
        """Send a request and return its response's payload. If no response comes and
        ``applied()`` says the device took the request anyway, return None instead of
        sending it again."""
        last_error = None
        for attempt in range(self.retries + 1):
            self._tag = (self._tag + 1) & 0xFF or 1
            tag = self._tag
            self.transport.write(encode_frame(frame_type, bytes((tag,)) + body))
            deadline = time.monotonic() + self.transport.response_timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last_error = "no response"
                    break
                answer = None
                for rtype, payload in self._receive(min(remaining, 0.05)):
                    if rtype == FrameType.ERROR and payload[0] in (tag, 0):
                        answer = ("error", payload[1])
                    elif rtype == expect and payload[0] == tag:
                        answer = ("ok", payload)
                    else:
                        self.stale_responses += 1
                if answer is None:
                    continue
                if answer[0] == "ok":
                    return answer[1]
                code = answer[1]
                if code == ErrorCode.RUN_ACTIVE:
                    raise RunActiveError(f"{what}: refused by the device (ERROR RUN_ACTIVE)")
                if code not in (ErrorCode.BAD_CRC, ErrorCode.BAD_TYPE, ErrorCode.BAD_LENGTH):
                    raise RequestError(what, code)
                last_error = ErrorCode(code).name
                break
            if last_error == "no response" and applied is not None and applied():
                self.lost_acks += 1
                return None
            self.request_retries += 1
        raise LinkError(f"{self.transport.url}: {what}: {last_error} after "
                        f"{self.retries + 1} tries; the link is dead or too noisy")

    # -- words ------------------------------------------------------------------------------
    def _max_burst(self):
        return self.device.max_burst if self.device else ID_WORDS

    def read_words(self, addr, count):
        """``count`` words from word address ``addr`` (split into bursts as needed)."""
        words = []
        while count:
            n = min(count, self._max_burst())
            body = bytes((addr & 0xFF, addr >> 8, n))
            payload = self._request(FrameType.READ, body, FrameType.READ_DATA,
                                    f"read {n} words at 0x{addr:x}")
            words += [int.from_bytes(payload[3 + 4 * i:7 + 4 * i], "little") for i in range(n)]
            addr += n
            count -= n
        return words

    def write_words(self, addr, words, applied=None):
        """Write ``words`` from word address ``addr``; each burst is applied atomically.
        ``applied``: see :meth:`_request` (for a single-burst write)."""
        words = list(words)
        while words:
            chunk, words = words[:self._max_burst()], words[self._max_burst():]
            body = bytes((addr & 0xFF, addr >> 8)) + b"".join(
                int(w).to_bytes(4, "little") for w in chunk)
            self._request(FrameType.WRITE, body, FrameType.WRITE_ACK,
                          f"write {len(chunk)} words at 0x{addr:x}", applied)
            addr += len(chunk)

    # -- registers --------------------------------------------------------------------------
    def identify(self) -> DeviceInfo:
        """Read the identification block and rebuild the register map from it."""
        self.device = DeviceInfo.from_words(self.read_words(0, ID_WORDS))
        soc = self.device.soc_params
        self.decoder.limits = FrameLimits(soc.max_burst, soc.record_bytes,
                                          soc.max_records_per_frame)
        return self.device

    @property
    def regmap(self):
        if self.device is None:
            raise HeraldryError("identify() the device first")
        return self.device.regmap

    def read(self, name):
        """The value of register ``name`` (multi-word registers assembled)."""
        reg = self.regmap[name]
        if not reg.access.readable:
            raise HeraldryError(f"register {name} is write-only")
        words = self.read_words(reg.addr, reg.words)
        return sum(w << (WORD_BITS * i) for i, w in enumerate(words))

    def write(self, name, value):
        """Write register ``name``. Raises :class:`RunActiveError` before writing if the
        register is written only while no run is active (``idle_only``) and a run is."""
        reg = self.regmap[name]
        if not reg.access.writable:
            raise HeraldryError(f"register {name} is not writable")
        if not 0 <= value < (1 << reg.width):
            raise ConfigError(name, value, f"must fit {reg.width} bits")
        if reg.idle_only and self.status().running:
            raise RunActiveError(f"write {name}")
        self.write_words(reg.addr, [value])

    def _read_group(self, prefix):
        """Every register named ``prefix...`` in one burst: ``{short name: value}``."""
        first, n = self.regmap.span(prefix)
        words = self.read_words(first, n)
        values = {}
        for reg in self.regmap.group(prefix):
            part = words[reg.addr - first:reg.addr - first + reg.words]
            values[reg.name[len(prefix):]] = sum(w << (WORD_BITS * i)
                                                 for i, w in enumerate(part))
        return values

    def status(self) -> Status:
        return Status(**self._read_group("status."))

    def link_stats(self):
        """The device's link counters (``link.*``) as a dict."""
        return self._read_group("link.")

    # -- configuration ----------------------------------------------------------------------
    def configure(self, config: Config):
        """Check ``config`` against the device and write it (configuration registers in one
        burst, then the decision table). Takes effect at the next :meth:`start`. Raises
        :class:`ConfigError` before writing anything if a value does not fit, or if the link
        emulator is enabled with settings that the new attempt period cannot hold, and
        :class:`RunActiveError` if a run is active (the configuration and the table are
        written only while none is)."""
        core, table = config.compile(self.regmap_device())
        if self.emulator is not None:
            # The emulator settings already written must suit the new period as well.
            from .emulator import emulator_registers
            try:
                emulator_registers(self.emulator, self.device, core.period)
            except ConfigError as exc:
                raise ConfigError("period_ns", config.period_ns,
                                  f"too short for the link emulator's settings ({exc})") from None
        if self.status().running:
            raise RunActiveError("configure")
        self._write_core_config(core)
        first = self.regmap["table"].addr
        self.write_words(first, table)
        self.config, self.core_config, self.table = config, core, table

    def regmap_device(self):
        if self.device is None:
            self.identify()
        return self.device

    def _write_core_config(self, core: CoreConfig):
        params = self.device.core_params
        value = core.port_value(params)
        words = []
        for reg in self.regmap.group("config."):
            node = value
            for key in reg.path:
                node = node[key]
            words.append(int(node))
        first, _ = self.regmap.span("config.")
        self.write_words(first, words)

    def configure_emulator(self, settings, *, reseed=True):
        """Check and write link-emulator ``settings``
        (:class:`~heraldry.host.emulator.EmulatorSettings`) and enable the emulator; it then
        replaces the detector and ready inputs. ``reseed`` restarts its generators from the
        seed (they also keep their state across runs otherwise). Raises
        :class:`ConfigError` before writing anything if a value does not fit."""
        from .emulator import emulator_registers
        device = self.regmap_device()
        if not device.emulator:
            raise ConfigError("emulator", settings, "this gateware has no link emulator")
        period = self.core_config.period if self.core_config is not None else None
        values = emulator_registers(settings, device, period)
        regs = self.regmap.group("emulator.")
        first, _ = self.regmap.span("emulator.")
        self.write_words(first, [values[reg.name] for reg in regs])
        if reseed:
            self.write_words(self.regmap["control"].addr, [CONTROL_RESEED])
        self.emulator = settings

    def disable_emulator(self):
        """Give the detector and ready inputs back to the pins."""
        self.write("emulator.enable", 0)
        self.emulator = None

    # -- running ----------------------------------------------------------------------------
    def start(self):
        """Start a run (ignored by the device while one is running).

        If START's acknowledgement is lost, it is not simply sent again: a run that had
        started (and perhaps already ended) would be followed by a second one. The device's
        status decides: running, or one more run finished, means it took the START."""
        runs = self.status().runs

        def took_start():
            status = self.status()
            return status.running or status.runs != runs

        self.write_words(self.regmap["control"].addr, [CONTROL_START], applied=took_start)

    def stop(self):
        self.write_words(self.regmap["control"].addr, [CONTROL_STOP])

    def counters(self) -> Counters:
        """Latch and read a consistent snapshot of every counter."""
        self.write_words(self.regmap["control"].addr, [CONTROL_SNAPSHOT])
        first = self.regmap["snapshot.cycle"].addr
        last = self.regmap.group("counters.")[-1]
        words = self.read_words(first, last.addr + last.words - first)
        return Counters.from_words(self.device.core_params, words, self.device.clk_freq)

    def read_events(self, timeout=0.0) -> np.ndarray:
        """Records received so far, waiting up to ``timeout`` s if there are none yet."""
        deadline = time.monotonic() + timeout
        while True:
            self._receive(0.0 if self._event_chunks else
                          max(0.0, min(0.05, deadline - time.monotonic())))
            if self._event_chunks or time.monotonic() >= deadline:
                break
        if len(self._event_chunks) == 1:
            raw = self._event_chunks[0]      # a bytearray of the decoder's: no copy
            raw += PAD
        else:
            self._event_chunks.append(PAD)
            raw = b"".join(self._event_chunks)
        self._event_chunks.clear()
        records = decode_records(self.device.core_params, raw, padded=True)
        self._account(records)
        return records

    def events(self, timeout=None, poll=0.05):
        """Yield batches of records (structured arrays, see :mod:`heraldry.host.records`) as
        they arrive; stop after ``timeout`` seconds without any (never, if None)."""
        last = time.monotonic()
        while True:
            batch = self.read_events(poll)
            if len(batch):
                last = time.monotonic()
                yield batch
            elif timeout is not None and time.monotonic() - last >= timeout:
                return

    def _account(self, records):
        """Sequence-number gaps, vectorised."""
        if not len(records):
            return
        modulus = 1 << self.device.seq_width
        seq = records["seq"].astype(np.int64)
        if self._next_seq is not None:
            seq = np.concatenate(([self._next_seq - 1], seq))
        gaps = int(((np.diff(seq) - 1) % modulus).sum())
        self.seq_gaps += gaps
        self._next_seq = (int(records["seq"][-1]) + 1) % modulus

    def run(self, *, duration=None, heralds=None, attempts=None, timeout=None,
            confidence=0.95) -> RunResult:
        """Start a run with the configured settings and collect it.

        Parameters
        ----------
        duration : float, optional
            Seconds of device time; the device ends the run itself (it overrides the
            configured ``timeout_s`` for this run).
        attempts : int, optional
            Attempts; overrides ``max_attempts`` for this run.
        heralds : int, optional
            Stop once this many heralds have been received (the device may herald a few
            more before the stop takes effect; they are kept).
        timeout : float, optional
            Wall-clock seconds after which the host stops the run.

        Returns
        -------
        RunResult
            Warns (:class:`LinkWarning`) if any record was lost on the way.
        """
        if self.config is None:
            raise HeraldryError("configure() the device before run()")
        dev = self.device
        core = self.core_config
        overrides = {}
        if duration is not None:
            cycles = round(duration * dev.clk_freq)
            if not 1 <= cycles < (1 << dev.limit_width):
                raise ConfigError("duration", duration,
                                  f"must be 1..{(1 << dev.limit_width) - 1} cycles at "
                                  f"{dev.clk_freq / 1e6:g} MHz")
            overrides["config.timeout"] = cycles
        if attempts is not None:
            if isinstance(attempts, bool) or not isinstance(attempts, int) \
                    or not 1 <= attempts < (1 << dev.limit_width):
                raise ConfigError("attempts", attempts,
                                  f"must be an integer 1..{(1 << dev.limit_width) - 1}")
            overrides["config.max_attempts"] = attempts
        if not (overrides or heralds or timeout or core.timeout or core.max_attempts
                or core.stop_on_herald):
            raise ConfigError("run", "no end condition",
                              "give duration, attempts, heralds or timeout, or configure "
                              "timeout_s, max_attempts or stop_on_herald")

        # Quiesce: the previous run's records must not be mistaken for this run's.
        if self.status().running:
            raise HeraldryError("a run is already in progress; stop() it first")
        self._drain_device()
        self.backlog = self.read_events(0.0)
        # From here every record is this run's: expect them from the device's next number.
        self._next_seq = self.status().next_seq
        for name, value in overrides.items():
            self.write(name, value)
        records_in_before = self.read("link.records_in")
        stats_before = self.decoder.stats.as_dict()
        gaps_before = self.seq_gaps

        self.start()
        t0 = time.monotonic()
        batches, n_heralds, ended, stop_sent = [], 0, False, False
        quiet_since = time.monotonic()
        try:
            while not ended:
                batch = self.read_events(0.05)
                if len(batch):
                    quiet_since = time.monotonic()
                    batches.append(batch)
                    kinds = batch["kind"]
                    n_heralds += int(np.count_nonzero(kinds == RecordKind.HERALD.value))
                    ended = bool(np.any(kinds == RecordKind.END.value))
                    if ended:
                        break
                if not stop_sent and ((heralds and n_heralds >= heralds) or
                                      (timeout and time.monotonic() - t0 >= timeout)):
                    self.stop()
                    stop_sent = True
                # The END record itself may be lost: ask the device now and then.
                if time.monotonic() - quiet_since > 0.5:
                    quiet_since = time.monotonic()
                    if not self.status().running:
                        self._drain_device()
                        batch = self.read_events(0.0)
                        if len(batch):
                            batches.append(batch)
                        break
        finally:
            if overrides:
                # Leaving mid-run (an exception): the overrides can be restored only once the
                # run has ended, so it is stopped.
                if not ended and self.status().running:
                    self.stop()
                for name in overrides:
                    self.write(name, getattr(core, name.split(".")[1]))
        records = np.concatenate(batches) if batches else np.empty(
            0, dtype=record_dtype(dev.core_params))
        counters = self.counters()
        status = self.status()
        # Records missing after the last one received (the END record, say).
        modulus = 1 << dev.seq_width
        self.seq_gaps += (status.next_seq - self._next_seq) % modulus
        self._next_seq = status.next_seq
        records_in = (self.read("link.records_in") - records_in_before) % (1 << 32)
        stats = self.decoder.stats.as_dict()
        link = LinkReport(
            seq_gaps=self.seq_gaps - gaps_before,
            device_drops=counters.dropped_records,
            link_lost=records_in - len(records),
            crc_errors=(stats["crc_errors"] - stats_before["crc_errors"]
                        + stats["bad_headers"] - stats_before["bad_headers"]),
            garbage_bytes=stats["garbage_bytes"] - stats_before["garbage_bytes"])
        n_att = counters.attempts
        n_her = sum(counters.heralds)
        duration_s = counters.cycles / dev.clk_freq
        result = RunResult(
            records=records, counters=counters, reason=status.reason, attempts=n_att,
            heralds=n_her,
            outcome_counts={o + 1: n for o, n in enumerate(counters.heralds)},
            duration_s=duration_s, rate_hz=n_her / duration_s if duration_s else 0.0,
            p_success=n_her / n_att if n_att else float("nan"),
            p_interval=wilson_interval(n_her, n_att, confidence), confidence=confidence,
            link=link, config=self.config, device=dev, table=self.table)
        if not link.clean:
            warnings.warn(LinkWarning(f"records lost during the run: {link.as_dict()}"),
                          stacklevel=2)
        return result

    def _drain_device(self, timeout=None):
        """Wait until the device's event FIFO is empty, so that every record it holds has
        been sent (responses follow the event frames already started)."""
        deadline = time.monotonic() + (timeout or self.transport.response_timeout)
        while self.read("link.fifo_level"):
            if time.monotonic() > deadline:
                raise LinkError(f"{self.transport.url}: the event FIFO does not drain")
            self._receive(0.01)
