"""tools/refresh_outputs.py: what its --check compares.

Text and pictures by place; not stderr, object ids or image bytes."""
import importlib.util
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

spec = importlib.util.spec_from_file_location("refresh_outputs",
                                              Path(__file__).parents[1] / "tools" / "refresh_outputs.py")
ro = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ro)


def nb(*outputs):
    return new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("print(1)\nshow(fig)", outputs=list(outputs))])


def out(text="1\n", png="AAAA", obj="<Thing at 0x7f00aa>"):
    return [new_output("stream", name="stdout", text=text), new_output("stream", name="stderr", text="warning"),
            new_output("display_data", data={"image/png": png, "text/plain": "<Image>"}),
            new_output("execute_result", data={"text/plain": obj}, execution_count=3)]


def test_same_text_passes():
    assert ro.differences("t", nb(*out()), nb(*out(png="BBBB", obj="<Thing at 0x55bb>"))) == []
    split = [new_output("stream", name="stdout", text="1"), new_output("stream", name="stdout", text="\n")]
    assert ro.differences("t", nb(*out()), nb(*(split + out()[1:]))) == []      # stdout arriving in pieces


def test_changed_text_or_missing_picture_fails_naming_the_cell():
    d = ro.differences("t", nb(*out()), nb(*out(text="2\n")))
    assert len(d) == 1 and d[0].startswith("t, cell 1") and "'print(1)'" in d[0] and "'2'" in d[0]
    assert ro.differences("t", nb(*out()), nb(*[o for o in out() if o.output_type != "display_data"]))


def test_changed_source_is_reported():
    a, b = nb(*out()), nb(*out())
    b.cells[1].source = "print(2)"
    assert "changed while it ran" in ro.differences("t", a, b)[0]


def test_skipped_cells_follow_nbdev_test():
    flags = {"notest", "slow"}
    assert ro.skipped(new_code_cell("#| notest\nx = 1"), flags)
    assert ro.skipped(new_code_cell("#| eval: false\nx = 1"), flags)
    assert not ro.skipped(new_code_cell("#| export\nx = 1"), flags)
    assert ro.skipped(new_markdown_cell("#| notest"), flags)


def test_kept_chapters_are_those_nbdev_test_skips():
    "nbdev_test's own reading of the frontmatter skips exactly the chapters the script runs: each runs once in CI."
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    skipped_by_nbdev = sorted(p.stem for p in ro.NBS.glob("*.ipynb")
                              if NBProcessor(p, procs=FrontmatterProc, process=True).nb.frontmatter_.get("skip_exec"))
    assert skipped_by_nbdev == sorted(ro.CHAPTERS) and len(ro.CHAPTERS) >= 12


def test_chapters_exist():
    for name in ro.CHAPTERS: assert (ro.NBS / f"{name}.ipynb").is_file(), name
    assert isinstance(nbformat.read(ro.NBS / f"{ro.CHAPTERS[0]}.ipynb", as_version=4), nbformat.NotebookNode)
