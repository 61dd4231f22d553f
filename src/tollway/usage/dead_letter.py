"""The dead-letter file: usage records the database refused, kept so nothing is lost.

One JSON line per record, appended to ``dead-letter.jsonl`` in the records folder::

    {"failed_at": "2026-12-05T10:00:00.123Z", "error": "…", "record_key": 123, "record": {SPEC §5 record}}

Each one also counts in ``tollway_records_failed_total`` and gets a log line, at most one
a second (a flood of them is summed into the next line: "and 41 more"). Several workers
may append to the same file: each line is one ``write`` to a file opened for appending.
A record the file cannot take (no folder: an in-memory database; a write that failed) is
logged whole, every time.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tollway.usage.timestamps import iso_of_ms

log = logging.getLogger("tollway")


class DeadLetter:
    def __init__(
        self, path: Path | None, on_record: Callable[[], None] | None = None, *, log_interval_s: float = 1.0
    ) -> None:
        self.path = path
        self.on_record = on_record
        self.log_interval_s = log_interval_s
        self.count = 0
        self._last_log = -float("inf")
        self._unlogged = 0

    def add(self, key: int | None, record: dict[str, Any], error: str) -> None:
        """Keep ``record`` (SPEC §5 shape; stored under ``key``) with the reason the
        database gave."""
        self.count += 1
        entry = {
            "failed_at": iso_of_ms(time.time_ns() // 1_000_000),
            "error": error,
            "record_key": key,
            "record": record,
        }
        try:
            line = orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            # Beyond orjson (an int over 64 bits, a lone surrogate): the standard
            # library writes those, escaped.
            line = (json.dumps(entry, default=str) + "\n").encode()
        kept, where = self._write(line)
        if self.on_record is not None:
            self.on_record()
        now = time.monotonic()
        if kept and now - self._last_log < self.log_interval_s:
            self._unlogged += 1
            return
        more = f" (and {self._unlogged} more since the last message)" if self._unlogged else ""
        self._last_log, self._unlogged = now, 0
        log.error(
            "usage: the database refused the record of request %s; %s%s: %s",
            str(record.get("request_id"))[:64],
            where,
            more,
            error,
        )

    def _write(self, line: bytes) -> tuple[bool, str]:
        """Whether the record is in the file, and where it went, for the log line (which
        carries the record itself when the file could not)."""
        text = line.decode(errors="replace").strip()
        if self.path is None:
            return False, f"there is no records folder, so it is only here: {text}"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "ab") as f:
                f.write(line)
        except OSError as exc:
            return False, f"writing it to {self.path} failed ({exc}), so it is only here: {text}"
        return True, f"kept in {self.path}"
