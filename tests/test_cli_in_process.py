"""``edgedistill.cli.main`` called in-process (a Python build step) leaves other libraries' logging alone."""

from __future__ import annotations

import logging


def test_main_in_process_does_not_close_other_handlers(tmp_path):
    """An app's log file (or absl's handler, which LiteRT installs) stays open after CLI calls: closing it broke
    every later test on a pytest worker once LiteRT had been imported."""
    from edgedistill.cli import main

    handler = logging.FileHandler(tmp_path / "app.log")
    logging.getLogger("an_app").addHandler(handler)
    try:
        assert main(["targets", "--dry-run", "--out", str(tmp_path / "o")]) == 0
        assert main(["demo", "--dry-run", "--out", str(tmp_path / "o")]) == 0
        assert handler.stream is not None and not handler.stream.closed
        logging.getLogger("an_app").error("still logging")
        handler.flush()
    finally:
        logging.getLogger("an_app").removeHandler(handler)
        handler.close()
    assert "still logging" in (tmp_path / "app.log").read_text()
