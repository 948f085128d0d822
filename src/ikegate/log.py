"""charon-style logging: subsystems with levels, as ``charondebug`` configures them.

strongSwan logs per subsystem (``dmn mgr ike chd job cfg knl net asn enc tnc imc imv pts
tls esp lib``) at levels -1 (silent) .. 4 (private); ``charondebug="cfg 2"`` raises one
subsystem.  Here each subsystem is a Python logger ``ikegate.<sub>`` and each charon level
maps to a Python level, so the standard logging machinery does the filtering:

    charon level   0 audit   1 control   2 controlmore   3 raw   4 private
    Python level   25        20 (INFO)   15              10      5

Level 4 would print secrets in strongSwan; ikegate never logs secrets at any level.
"""

from __future__ import annotations

import logging
import sys

SUBSYSTEMS = (
    "dmn", "mgr", "ike", "chd", "job", "cfg", "knl", "net",
    "asn", "enc", "tnc", "imc", "imv", "pts", "tls", "esp", "lib",
)  # fmt: skip

AUDIT = 25
CTRL = logging.INFO  # 20
CTRLMORE = 15
RAW = logging.DEBUG  # 10
PRIVATE = 5

_LEVELS = {-1: logging.CRITICAL + 10, 0: AUDIT, 1: CTRL, 2: CTRLMORE, 3: RAW, 4: PRIVATE}
logging.addLevelName(AUDIT, "AUDIT")
logging.addLevelName(CTRLMORE, "CTRLMORE")
logging.addLevelName(PRIVATE, "PRIVATE")

DEFAULT_LEVEL = 1


def python_level(charon_level: int) -> int:
    return _LEVELS[max(-1, min(4, charon_level))]


def get_logger(subsystem: str) -> logging.Logger:
    """The logger of one charon subsystem (``ike``, ``cfg``, ``net``, ...)."""
    return logging.getLogger(f"ikegate.{subsystem}")


class SaLogger(logging.LoggerAdapter):
    """Prefixes messages with strongSwan's ``<conn|unique-id>`` tag."""

    def __init__(self, logger: logging.Logger, sa) -> None:
        super().__init__(logger, {})
        self.sa = sa

    def process(self, msg, kwargs):
        return f"<{self.sa.log_tag}> {msg}", kwargs


class CharonFormatter(logging.Formatter):
    """``Nov 27 07:54:59 00[IKE] message``, charon's file-log look."""

    def body(self, record: logging.LogRecord) -> str:
        """``00[IKE] message`` (and the traceback, if any): the line without its time."""
        sub = record.name.rsplit(".", 1)[-1].upper() if record.name.startswith("ikegate.") else "LIB"
        if len(sub) != 3:
            sub = "DMN"
        text = f"00[{sub}] {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.formatTime(record, '%b %d %H:%M:%S')} {self.body(record)}"


class _SyslogFormatter(CharonFormatter):
    """``ikegate[pid]: 00[IKE] message``: charon's syslog look (journald adds the time)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"ikegate[{record.process}]: {self.body(record)}"


class _JournalFormatter(CharonFormatter):
    """``<6>00[IKE] message``: stderr read by journald (sd-daemon priority prefix; the
    journal adds time, name and pid)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_syslog_priority(record.levelno)}>{self.body(record)}"


def _syslog_priority(level: int) -> int:
    if level >= logging.ERROR:
        return 3
    if level >= logging.WARNING:
        return 4
    if level >= AUDIT:
        return 5
    return 6 if level >= CTRL else 7


def configure(charondebug: dict[str, int] | None = None, *, stream=None, syslog: bool = False,
              journal: bool = False) -> None:
    """Set per-subsystem levels from a parsed ``charondebug`` and install one handler:
    syslog (``/dev/log``, falling back to stderr), or ``stream`` (stderr) in charon's file
    format, or in journald's stream format with ``journal``."""
    # no caller frames, thread or multiprocessing names in our records (the logging HOWTO's
    # "Optimization": a handshake logs ~40 lines, and looking up the caller's frame for each
    # cost more than formatting it)
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger("ikegate")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler: logging.Handler | None = None
    if syslog:
        from logging.handlers import SysLogHandler

        try:
            handler = SysLogHandler(address="/dev/log", facility=SysLogHandler.LOG_DAEMON)
            handler.setFormatter(_SyslogFormatter())
        except OSError:
            handler = None  # no syslog daemon here: stderr rather than silence
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(_JournalFormatter() if journal else CharonFormatter())
    root.addHandler(handler)
    root.propagate = False
    root.setLevel(PRIVATE)
    levels = dict.fromkeys(SUBSYSTEMS, DEFAULT_LEVEL)
    for sub, level in (charondebug or {}).items():
        if sub == "any":
            levels = dict.fromkeys(SUBSYSTEMS, level)
        elif sub in levels:
            levels[sub] = level
    for sub, level in levels.items():
        get_logger(sub).setLevel(python_level(level))
