"""Student-chosen text made harmless for the places it is shown: terminals, spreadsheets.

Everything here is a pure function of a string. The callers are the writers of what the
instructor reads: the console of ``dlgrade grade``/``batch``, logs, feedback pages, results.json
and grades.csv.
"""
from __future__ import annotations

import re

# C0 (except the two every viewer shows as layout), DEL and C1: terminals act on these
# (clear screen, move the cursor, rewrite a line with a carriage return), so a student could
# draw a fake "Total: 8/8" on the instructor's screen. Bidirectional overrides reorder what
# is displayed ("Trojan source"), so they are made visible too.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_AND_LAYOUT = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                                 "\u2066-\u2069\u2028\u2029]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str, *, single_line: bool = False) -> str:
    r"""``text`` with control characters written out: ESC becomes the four characters ``\x1b``.

    Newline and tab are kept, unless ``single_line``: then they are escaped too (a name or a
    log field must stay on its one line).
    """
    pattern = _CONTROL_AND_LAYOUT if single_line else _CONTROL
    return pattern.sub(_visible, str(text))


# A spreadsheet evaluates a cell that starts with one of these as a formula
# (``=HYPERLINK(...)`` exfiltrates or misleads); tab and CR are read as separators by some.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def csv_cell(text: str) -> str:
    """A text cell for grades.csv that no spreadsheet runs as a formula: a leading ``'`` (the
    usual neutraliser) before one that could be. Plain numbers such as ``-3`` stay as they
    are: they cannot be formulas."""
    text = str(text)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
