"""A griffe extension: the docments of a function (a comment after each parameter, nbdev's style) become its
docstring's parameter list, so that mkdocstrings shows them on the API pages.

    def attack(model: MGNet,   # the model attacked
               x: Tensor,      # normalised images
               ) -> Tensor:
        "PGD on `x`."

reads as a docstring `PGD on `x`.` with an `Args:` section (Google style) naming `model` and `x`.
"""
from __future__ import annotations

import io
import tokenize

import griffe


def docments(lines: list[str], params: list[str]) -> dict[str, str]:
    "The comment after each of `params` in a function's source `lines` (read up to the end of its signature)."
    found: dict[str, str] = {}
    cur, last, depth, opened = None, "", 0, False
    try:
        for tok in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline):
            if tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
                opened = True
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth -= 1
            elif tok.type == tokenize.NAME and depth == 1 and tok.string in params and last in ("(", ",", "*", "**"):
                cur = tok.string
            elif tok.type == tokenize.COMMENT and cur and cur not in found:
                found[cur] = tok.string.lstrip("#").strip()
            elif tok.type == tokenize.OP and tok.string == ":" and depth == 0 and opened:
                break                                           # the end of the signature
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT): last = tok.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return {}
    return found


class Docments(griffe.Extension):
    "Add the docments of every function to its docstring."

    def on_function_instance(self, *, node, func: griffe.Function, agent, **kwargs) -> None:
        params = [p.name for p in func.parameters if p.name not in ("self", "cls")]
        if not params: return
        try: lines = func.lines
        except Exception: return
        notes = docments(lines, params)
        if not notes: return
        args = "\n".join(f"    {p}: {notes[p]}" for p in params if p in notes)
        if func.docstring is None:
            func.docstring = griffe.Docstring("", parent=func)
        if "Args:" in func.docstring.value: return
        func.docstring.value = (func.docstring.value.rstrip() + "\n\nArgs:\n" + args).lstrip()
