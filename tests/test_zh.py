"""中文: every sentence in Chinese, the mathematics unchanged; the zh LaTeX compiles with xelatex."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

import symloss
from symloss.cli import main
from symloss.documents import documents
from symloss.words import Phrase, en, untranslated, zh

CASES = [(name, options) for _, name, options in documents()] + [
    ("bce_with_logits", {"pos_weight": [2.0], "weight": [1.0]}),
    ("ce", {"weight": [1.0, 2.0], "label_smoothing": 0.1}),
    ("nll_loss", {"weight": [1.0, 2.0]}),
] + [(name, {"reduction": r}) for name in ("bce", "ce", "mse_loss") for r in ("none", "sum")]

_MATH = re.compile(r"\$\$.*?\$\$", re.S)


def test_both_languages_have_the_same_keys_and_placeholders():
    assert set(en.WORDS) == set(zh.WORDS)
    fields = re.compile(r"(?<!\{)\{(\w+)\}(?!\})")
    for key, text in en.WORDS.items():
        assert set(fields.findall(text)) == set(fields.findall(zh.WORDS[key])), key


def _texts(d):
    for order in (1, 2):
        for step in d.steps_for(order):
            yield step.why
            if isinstance(step.why, Phrase):
                yield from (v for v in step.why.params.values() if isinstance(v, str))
    yield d.spec.summary


@pytest.mark.parametrize(("name", "options"), CASES)
def test_every_catalogue_sentence_has_its_chinese(name, options):
    d = symloss.derive(name, **options)
    missing = sorted({m for t in _texts(d) for m in untranslated(t, "zh")})
    assert not missing, f"add to symloss/words/zh.py SENTENCES: {missing}"


# Three English words in a row are a sentence left untranslated (code names have _ or = or ').
_ENGLISH = re.compile(r"\b[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}\b")


@pytest.mark.parametrize(("name", "options"), CASES[:25])
def test_zh_text_has_no_english_sentence(name, options):
    d = symloss.derive(name, **options)
    for order in (1, 2):
        words = _MATH.sub("", d.markdown(order=order, lang="zh"))
        prose = [line for line in words.splitlines() if line and not line.startswith("#")]
        leaks = [m.group(0) for line in prose for m in _ENGLISH.finditer(line)]
        assert not leaks, leaks


@pytest.mark.parametrize(("name", "options"), [("bce", {}), ("ce", {"label_smoothing": 0.1}),
                                               ("sigmoid_focal_loss", {})])
def test_zh_derivation_has_the_same_formulas(name, options):
    d = symloss.derive(name, **options)
    for order in (1, 2):
        en_md, zh_md = d.markdown(order=order), d.markdown(order=order, lang="zh")
        assert _formulas(_MATH.findall(en_md)) == _formulas(_MATH.findall(zh_md))
        assert en_md != zh_md
    en_tex, zh_tex = d.latex(), d.latex(lang="zh")
    math = re.compile(r"^.*&=.*$", re.M)
    assert _formulas(math.findall(en_tex)) == _formulas(math.findall(zh_tex))


def _formulas(blocks: list[str]) -> list[str]:
    """The mathematics, without the words inside it (``\\text{where}`` is ``\\text{其中}``)."""
    return [re.sub(r"\\text\{[^}]*\}", r"\\text{}", b) for b in blocks]


def test_zh_relation_and_example_and_list(capsys):
    r = symloss.relate("bce", "ce")
    assert _MATH.findall(r.markdown()) == _MATH.findall(r.markdown(lang="zh"))
    assert "已证明" in r.text(lang="zh")
    ex = symloss.derive("bce").example([-1.7723, -1.5965, 0.8863], [0, 1, 0])
    out = ex.text(lang="zh")
    assert "链式法则" in out and "[0.0484, -0.2772, 0.2360]" in out
    assert main(["list", "--lang", "zh"]) == 0
    listing = capsys.readouterr().out
    assert "损失函数：" in listing and "均方误差（MSELoss）。" in listing


def test_unknown_language_is_a_clear_error(capsys):
    with pytest.raises(symloss.SymlossValueError, match="valid values: 'en', 'zh'"):
        symloss.derive("bce").text(lang="fr")
    with pytest.raises(SystemExit) as exit_:
        main(["derive", "bce", "--lang", "fr"])
    assert exit_.value.code == 2
    assert "invalid choice: 'fr'" in capsys.readouterr().err


def _xelatex() -> str | None:
    found = shutil.which("xelatex")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("xelatex is missing on CI: install texlive-xetex texlive-lang-chinese")
    return found


@pytest.mark.parametrize("what", ["derivation", "relation", "example"])
def test_zh_document_compiles_with_xelatex(tmp_path, what):
    xelatex = _xelatex()
    if xelatex is None:
        pytest.skip("xelatex not installed")
    if what == "derivation":
        tex = symloss.derive("bce").latex(document=True, lang="zh")
    elif what == "relation":
        tex = symloss.relate("ce", "kl_div").latex(document=True, lang="zh")
    else:
        ex = symloss.derive("ce").example([[1.0, 2.0, 0.5], [0.1, 0.2, -1.0]], [2, 0])
        tex = ex.latex(document=True, lang="zh")
    assert "ctexart" in tex and ("链式法则" in tex or "熵" in tex)
    tex.encode("utf-8")
    (tmp_path / "d.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run([xelatex, "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 1000


_QUOTED = re.compile(r"'[^']*'|\([^()]*=[^()]*\)")


def test_zh_check_report(tmp_path, monkeypatch, capsys):
    """symloss check --lang zh: the report of a wrong implementation, every line in Chinese."""
    pytest.importorskip("torch")
    (tmp_path / "halved.py").write_text(
        "import torch.nn.functional as F\n"
        "def half(z, y):\n"
        "    return 0.5 * F.binary_cross_entropy_with_logits(z, y)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["check", "bce_with_logits", "--impl", "halved:half", "--dtype", "float64",
                 "--lang", "zh"])
    out = capsys.readouterr().out
    assert code == 1
    assert "可能原因：多了一个常数因子 0.5" in out and "稳定性图" in out
    for line in out.splitlines():
        words = _QUOTED.sub("", line)  # case labels and option lists are names, not sentences
        assert not _ENGLISH.search(words), line
    import importlib

    from symloss.testing import check

    halved = importlib.import_module("halved")  # the module written above
    result = check(symloss.derive("bce_with_logits"), halved.half, dtypes=["float64"])
    report = result.report("half", lang="zh")
    assert "不一致" in report and "容差" in report
    assert result.report("half") == result.report("half", lang="en")
