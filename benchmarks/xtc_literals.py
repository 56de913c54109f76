# Copyright 2026 The codecompress-hf authors. Apache-2.0.
"""Python code in the form of CodeXGLUE's PY150, the data the XTC paper's CodeGPT was fine-tuned and scored on.

PY150 as CodeXGLUE ships it is a stream of Python tokens, not source text: comments, indentation and blank lines are
dropped, tokens are joined by single spaces, string and number literals become ``<STR_LIT>`` / ``<NUM_LIT>`` unless
they are among the most frequent ones (then ``<STR_LIT:value>`` / ``<NUM_LIT:value>``), and every logical line ends
with ``<EOL>``. The paper's scores (CodeGPT base EM 14.5%, ES 39.1) are on that form, where a line such as
``raise ValueError('bad base85 character at position %d' % i)`` is ``raise ValueError ( <STR_LIT> % i )``: a model
need not guess the message. :func:`normalize_code` writes code in that form with one logical line per text line
(the newline plays ``<EOL>``), so that the line-completion samples and scoring of :mod:`benchmarks.xtc_eval` work on
it unchanged.

Example:
    >>> print(normalize_code("def f(x):\\n    # add\\n    return x + 1  # one\\n", {"num": ["1"]}), end="")
    def f ( x ) :
    return x + <NUM_LIT:1>
"""

from __future__ import annotations

import io
import tokenize
from collections import Counter

STR_LIT, NUM_LIT = "<STR_LIT>", "<NUM_LIT>"
# bumped whenever the form changes, so that a teacher cached on an older form is not reused (TeacherSettings.key)
FORM_VERSION = "py150 form v2 (f-strings never kept)"
# tokens that carry no code: dropped, as CodeXGLUE's PY150 preprocessing drops them
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
_UNNAMEABLE = set(" \t\\'\"<>")
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python >= 3.12 splits f-strings into parts
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


def _literal_tokens(text: str):
    """``(kind, value)`` per code token of ``text``: kind ``"str"``, ``"num"``, ``"eol"`` or ``"tok"``; an f-string
    is one ``"str"`` token on every Python version. Raises ``tokenize.TokenError`` / ``SyntaxError`` where ``text``
    does not tokenize."""
    depth, start = 0, None
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if _FSTRING_START is not None and token.type == _FSTRING_START:
            depth += 1
            start = token.string if depth == 1 else start
            continue
        if depth:
            if token.type == _FSTRING_END:
                depth -= 1
                if not depth:
                    yield "str", start + token.string  # the parts are not needed: an f-string is never kept
            continue
        if token.type in _SKIPPED:
            continue
        if token.type == tokenize.NEWLINE:
            yield "eol", ""
        elif token.type == tokenize.STRING:
            yield "str", token.string
        elif token.type == tokenize.NUMBER:
            yield "num", token.string
        else:
            yield "tok", token.string


def _string_content(literal: str) -> str | None:
    """A string literal's text between its quotes (prefix such as ``b`` or ``r`` dropped), as PY150 names a kept
    literal: ``'utf-8'`` -> ``utf-8``; ``None`` for an f-string, a template that is never kept by value (and whose
    text Python >= 3.12 does not hand out as one token)."""
    prefix = literal[: len(literal) - len(literal.lstrip("rRbBuUfF"))]
    if "f" in prefix.lower():
        return None
    body = literal[len(prefix) :]
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    return body[len(quote) : len(body) - len(quote)]


def frequent_literals(texts, top_strings: int = 200, top_numbers: int = 30) -> dict[str, list[str]]:
    """The ``top_strings`` most frequent short string contents and ``top_numbers`` most frequent numbers of
    ``texts`` (files that do not tokenize are skipped), the literals :func:`normalize_code` keeps by value. Strings
    longer than 20 characters or holding whitespace, quotes, backslashes or angle brackets are never kept (a
    message is not a name, and a kept value must not break its ``<STR_LIT:...>`` placeholder). Ties break by value,
    so the result is deterministic.

    Example:
        >>> frequent_literals(["x = 'a'\\ny = 'a'\\nz = 'b c'\\nn = 0\\n"], top_strings=5, top_numbers=1)
        {'str': ['a'], 'num': ['0']}
    """
    for name, value in (("top_strings", top_strings), ("top_numbers", top_numbers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`{name}` must be an int >= 0, got {value!r}.")
    strings, numbers = Counter(), Counter()
    for text in texts:
        try:
            tokens = list(_literal_tokens(text))
        except (tokenize.TokenError, SyntaxError, IndentationError):
            continue
        for kind, value in tokens:
            if kind == "str":
                content = _string_content(value)
                if (
                    content is not None
                    and len(content) <= 20
                    and content.isprintable()
                    and not _UNNAMEABLE & set(content)
                ):
                    strings[content] += 1
            elif kind == "num":
                numbers[value] += 1

    def most(counter, count):
        return [value for value, _ in sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:count]]

    return {"str": most(strings, top_strings), "num": most(numbers, top_numbers)}


def normalize_code(text: str, keep: dict[str, list[str]] | None = None) -> str | None:
    """``text`` as PY150 tokens: one logical line per line, its tokens joined by single spaces, comments, blank lines
    and indentation dropped, literals replaced by ``<STR_LIT>`` / ``<NUM_LIT>`` except those in ``keep``
    (:func:`frequent_literals`), which become ``<STR_LIT:value>`` / ``<NUM_LIT:value>``. ``None`` when ``text`` does
    not tokenize (PY150 holds only files that parse).

    Example:
        >>> print(normalize_code('x = f("utf-8", 2)\\n', {"str": ["utf-8"]}), end="")
        x = f ( <STR_LIT:utf-8> , <NUM_LIT> )
    """
    keep = keep or {}
    strings, numbers = set(keep.get("str", ())), set(keep.get("num", ()))
    lines, line = [], []
    try:
        for kind, value in _literal_tokens(text):
            if kind == "eol":
                if line:
                    lines.append(" ".join(line))
                line = []
            elif kind == "str":
                content = _string_content(value)
                line.append(f"<STR_LIT:{content}>" if content is not None and content in strings else STR_LIT)
            elif kind == "num":
                line.append(f"<NUM_LIT:{value}>" if value in numbers else NUM_LIT)
            else:
                line.append(value)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    if line:
        lines.append(" ".join(line))
    return "\n".join(lines) + "\n" if lines else None


def normalize_files(files, keep: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
    """``{"path", "text"}`` files in PY150 form (:func:`normalize_code`); files that do not tokenize are left out."""
    normalized = []
    for item in files:
        text = normalize_code(item["text"], keep)
        if text is not None:
            normalized.append({"path": item["path"], "text": text})
    return normalized


__all__ = ["FORM_VERSION", "NUM_LIT", "STR_LIT", "frequent_literals", "normalize_code", "normalize_files"]
