"""The background log handler: lines written in batches off the serving thread, none lost."""

from __future__ import annotations

import io
import logging
import time

from tastebud.observability import BackgroundStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_logged_in_bursts_go_out_in_few_writes_and_in_order() -> None:
    stream = CountingStream()
    handler = BackgroundStreamHandler(stream, interval=0.3)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tastebud.tests.background")
    logger.addHandler(handler)
    logger.propagate, logger.level = False, logging.INFO
    try:
        for burst in range(10):  # ten bursts a few ms apart: a wake-up each without the pause
            for n in range(20):
                logger.info("line %d", burst * 20 + n)
            time.sleep(0.005)
        handler.flush()
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(200)]
        assert stream.writes <= 3
    finally:
        logger.removeHandler(handler)
        handler.close()
