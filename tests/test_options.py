"""One dtype list and one device pattern: the CLI, the pytest plugin and the spec schema agree with `options`."""

from __future__ import annotations

import json

import pytest

from conformance.cli import build_parser
from conformance.options import DEVICE_SCHEMA_PATTERN, DTYPES, LOAD_DTYPES, is_device_choice
from conformance.schema import render

pytest_plugins = ["pytester"]

DEVICES_ACCEPTED = ["auto", "cpu", "cuda", "cuda:0", "cuda:12"]
DEVICES_REFUSED = ["", "gpu", "cuda:", "cuda:x", "cpu:0", "CUDA", " cuda", "cuda:1 ", "mps"]


@pytest.mark.parametrize("text", DEVICES_ACCEPTED)
def test_device_choices_accepted(text: str) -> None:
    assert is_device_choice(text)
    assert build_parser().parse_args(["check", "m", "--spec", "s", "--device", text]).device == text


@pytest.mark.parametrize("text", DEVICES_REFUSED)
def test_device_choices_refused(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert not is_device_choice(text)
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["check", "m", "--spec", "s", "--device", text])
    assert caught.value.code == 2 and "is not auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_dtype_choices_are_the_one_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert LOAD_DTYPES == ("auto", *DTYPES)
    for dtype in LOAD_DTYPES:
        assert build_parser().parse_args(["check", "m", "--spec", "s", "--dtype", dtype]).dtype == dtype
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "m", "--spec", "s", "--dtype", "float64"])
    assert "invalid choice" in capsys.readouterr().err


def test_performance_rules_take_device_and_dtype_from_options() -> None:
    checks = json.loads(render())["$defs"]["checks"]
    performance = [definition for name, definition in checks.items() if name.startswith("performance.")]
    assert performance
    for definition in performance:
        assert definition["properties"]["device"]["pattern"] == DEVICE_SCHEMA_PATTERN == "^(cpu|cuda(:[0-9]+)?)$"
        assert definition["properties"]["dtype"]["enum"] == list(DTYPES)


def test_the_plugin_takes_the_same_devices(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--conformance-device", "cuda:")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--conformance-device: 'cuda:' is not auto, cpu, cuda or cuda:N*"])
