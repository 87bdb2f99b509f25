"""The library's messages: plain lines on stderr under the CLI and the API, silenced by the usual
logging call, left to a program's own logging configuration when it has one."""

import logging

from raysearch.log import LOGGER, messages_on_stderr


def test_messages_are_plain_lines_on_stderr_while_a_command_runs(capsys):
    with messages_on_stderr():
        logging.getLogger(f"{LOGGER}.data.dataset").warning("skipped 2 bad record(s)")
        logging.getLogger(f"{LOGGER}.searching.experiment").info("resuming student-4")
        logging.getLogger(f"{LOGGER}.training.step").debug("not shown")
    assert capsys.readouterr().err == "skipped 2 bad record(s)\nresuming student-4\n"
    assert not logging.getLogger(LOGGER).handlers  # nothing left behind after the command


def test_an_api_user_silences_them_or_keeps_their_own_logging(capsys, monkeypatch):
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.ERROR)
    try:
        with messages_on_stderr(only_if_unconfigured=True):
            logging.getLogger(f"{LOGGER}.searching.rundir").warning("counting the wall time afresh")
    finally:
        logger.setLevel(logging.NOTSET)
    assert capsys.readouterr().err == ""
    own = logging.StreamHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [own])
    with messages_on_stderr(only_if_unconfigured=True):
        assert own in logging.getLogger().handlers and not logger.handlers
