"""MkDocs hooks for the documentation site (`mkdocs build`, settings in mkdocs.yml).

- The chapters (`nbs/*.ipynb`) become pages under `chapters/`, rendered by mkdocs-jupyter with their saved outputs
  (nothing is executed), titled by their first heading.
- Every module of the package gets an API page under `api/`, written by mkdocstrings from its docstrings and docments.
- The navigation's "Chapters" and "Python API" sections list them: a chapter or module added later needs no edit here.
"""
from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
NBS, PKG = ROOT / "nbs", ROOT / "mgnet"


def chapters() -> list[Path]:
    "The chapters, in their order (`index.ipynb`, the package's front notebook, first)."
    return sorted(NBS.glob("*.ipynb"), key=lambda p: (p.stem != "index", p.stem))


def chapter_title(path: Path) -> str:
    "A chapter's title: its first `# heading`, with its number."
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown": continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("# "):
                title = line[2:].strip()
                return title if path.stem == "index" else f"{path.stem.split('_')[0]} {title}"
    return path.stem


def modules() -> list[str]:
    "The package's public modules (`mgnet.x`, `mgnet.sub.y`), from its files: nothing is imported."
    names = []
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") for p in parts): continue          # _modidx, private modules
        names.append(".".join(parts))
    return names


def _api_uri(module: str) -> str: return f"api/{module.removeprefix('mgnet.').replace('.', '/')}.md"


def on_config(config):
    "Fill the navigation's `Chapters` and `Python API` sections."
    for entry in config["nav"] or []:
        if not isinstance(entry, dict): continue
        if "Chapters" in entry:
            entry["Chapters"] = [{chapter_title(p): f"chapters/{p.name}"} for p in chapters()]
        if "Python API" in entry:
            head = [e for e in entry["Python API"] or [] if not (isinstance(e, str) and e.startswith("api/"))]
            entry["Python API"] = head + [{m: _api_uri(m)} for m in modules()]
    return config


def without_frontmatter(nb: dict) -> dict:
    ("A chapter as the site shows it: without its raw frontmatter cells (`skip_exec: true`, for `nbdev_test`), which "
     "mkdocs-jupyter would render as a heading.")
    return {**nb, "cells": [c for c in nb["cells"] if c["cell_type"] != "raw"]}


def _chapters_dir() -> str:
    ("A folder with `chapters/`: the chapters as the site shows them (`without_frontmatter`); mkdocs-jupyter reads "
     "pages from files under a source folder.")
    d = tempfile.mkdtemp(prefix="mgnet-docs-")
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    (Path(d) / "chapters").mkdir()
    for p in chapters():
        nb = without_frontmatter(json.loads(p.read_text(encoding="utf-8")))
        (Path(d) / "chapters" / p.name).write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    return d


@event_priority(100)   # before mkdocs-jupyter's on_files, which claims the notebooks
def on_files(files, config):
    src = _chapters_dir()
    for p in chapters():
        files.append(File(f"chapters/{p.name}", src_dir=src, dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    for m in modules():
        files.append(File.generated(config, _api_uri(m), content=f"# `{m}`\n\n::: {m}\n"))
    return files


_DOCS_LINK = re.compile(r'(src|href)="\.\./docs/([^"#]*?)(\.md)?(#[^"]*)?"')


def chapter_links(html: str) -> str:
    ("A chapter's links into `docs/` as the site has them: the chapter's `../docs/x.png` (right beside the notebook, "
     "on GitHub) is the site's `../x.png`, and `../docs/x.md` its page `../x.html`.")
    return _DOCS_LINK.sub(lambda m: f'{m[1]}="../{m[2]}{".html" if m[3] else ""}{m[4] or ""}"', html)


def on_post_page(output, page, config):
    return chapter_links(output) if page.file.src_uri.startswith("chapters/") else output
