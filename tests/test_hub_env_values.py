"""Environment values the downloader reads are checked: a clear usage error, never an internal one."""
from __future__ import annotations

import pytest

from tests.conftest import RUNNER
from tests.httpserver import hub_env  # noqa: F401
from zoo.cli.main import app


@pytest.mark.parametrize("name, value, said", [
    ("ZOO_CONNECT_TIMEOUT", "0", "must be above zero"),
    ("ZOO_TIMEOUT", "-1", "must be above zero"),
    ("ZOO_BACKOFF", "nan", "is not a finite number"),
    ("ZOO_RETRY_DEADLINE", "inf", "is not a finite number"),
    ("ZOO_RETRIES", "many", "is not a number"),
    ("ZOO_MIRROR", "http://[::1", "is not an http(s) base URL"),
    ("ZOO_MIRROR", "http://host:99999", "is not an http(s) base URL"),
])
def test_a_bad_environment_value_is_a_usage_error(hub_env, monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                  said: str) -> None:  # hub_env: an empty cache, so fetch downloads
    monkeypatch.setenv(name, value)
    result = RUNNER.invoke(app, ["fetch", "yolov3_r34_coco_quant_aware"])
    assert result.exit_code == 2, result.output
    assert said in result.output and "internal error" not in result.output
