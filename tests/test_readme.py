"""The README stays true: its set-up commands, its rendered derivation and its CLI examples."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import symloss
from symloss.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_two_setup_commands_are_there_word_for_word():
    assert 'pip install -e . && symloss derive bce\npip install -e ".[test]" && pytest -n auto\n' in README


def test_the_rendered_derivation_is_current():
    block = re.search(r"<!-- derivation:bce -->\n(.*)\n<!-- /derivation -->", README, re.S)
    assert block is not None
    md = symloss.derive("bce").markdown()
    expected = "\n".join(("##" + line) if line.startswith("#") else line for line in md.splitlines())
    assert block.group(1) == expected, "README derivation is stale: regenerate it from derive('bce')"


def _console_examples() -> list[tuple[str, list[str]]]:
    examples = []
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.splitlines()
        for n, line in enumerate(lines):
            if line.startswith("$ symloss "):
                shown = []
                for follow in lines[n + 1 :]:
                    if follow.startswith("$ "):
                        break
                    shown.append(follow)
                examples.append((line[2:], shown))
    return examples


@pytest.mark.parametrize(("command", "shown"), _console_examples(), ids=lambda v: str(v)[:60])
def test_cli_examples_run(command, shown, capsys, tmp_path, monkeypatch):
    if " check " in command:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # `--out derivations/` writes here, not into the repository
    argv = shlex.split(command)[1:]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    expected_code = 2 if any(line.startswith("symloss: error") for line in shown) else 0
    assert code == expected_code, out + err
    for line in shown:
        assert line in out + err


pytest_plugins = ["pytester"]


def test_the_pytest_example_passes_as_written(pytester):
    pytest.importorskip("torch")
    block = re.search(r"<!-- example:pytest -->\n```python\n(.*?)```\n<!-- /example -->", README, re.S)
    assert block is not None
    pytester.makepyfile(test_user_loss=block.group(1))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
