"""uvicorn's own error log (a 500's traceback) comes out as JSON lines, without the exception's message."""

from __future__ import annotations

import json
import logging

import pytest

from api.request_log import SERVER_ACCESS_LOGGER, SERVER_ERROR_LOGGER, configure_logging


def test_a_server_error_is_one_json_line_with_where_it_failed_but_not_its_message(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    try:
        raise RuntimeError("password=hunter2 for user li.na")
    except RuntimeError:
        logging.getLogger(SERVER_ERROR_LOGGER).exception("Exception in ASGI application")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["logger"], entry["level"], entry["exc_type"]) == (SERVER_ERROR_LOGGER, "ERROR", "RuntimeError")
    assert any("test_server_log.py" in frame for frame in entry["exc_frames"])
    assert "hunter2" not in lines[0] and "li.na" not in lines[0]
    assert not logging.getLogger(SERVER_ACCESS_LOGGER).isEnabledFor(logging.INFO)
