"""derivations/ is what `symloss derive --all` writes: regenerate it when a derivation changes."""

from __future__ import annotations

from pathlib import Path

from symloss.catalog import CATALOG
from symloss.documents import documents, render_all

FOLDER = Path(__file__).resolve().parents[1] / "derivations"


def test_derivations_folder_is_current():
    files = render_all()
    on_disk = {p.relative_to(FOLDER).as_posix() for p in FOLDER.rglob("*") if p.is_file()}
    assert on_disk == set(files), "run: symloss derive --all --out derivations/"
    stale = [n for n, text in files.items() if (FOLDER / n).read_text(encoding="utf-8") != text]
    assert not stale, f"stale: {stale}; run: symloss derive --all --out derivations/"


def test_every_loss_has_a_document_with_both_orders():
    names = {name for _, name, _ in documents()}
    assert names == set(CATALOG)
    text = (FOLDER / "l1_loss.md").read_text(encoding="utf-8")
    assert "second derivative" in text and "Kink" in text


def test_every_relation_has_its_documents():
    from symloss.relations import relations

    files = render_all()
    for slug in relations():
        assert f"relations/{slug}.md" in files and f"relations/{slug}.tex" in files
        assert f"(relations/{slug}.md)" in files["README.md"]
