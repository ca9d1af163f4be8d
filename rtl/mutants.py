"""Mutants of the unit's generated Verilog: where a fault can be put, and putting it there.

The generator reads the Verilog that Amaranth/Yosys write for the unit (one module per
instance: the top, ``.laneK``, ``.laneK.msg``, ``.outK``, ``.updK``) and lists every place a
fault can go, one :class:`Mutant` each:

``operator``    a binary operator swapped (``+``/``-``, ``&``/``|``, ``<``/``<=``, ``>``/``>=``,
                ``>>>``/``>>``, ``*``/``+``), a unary ``~``/``!`` dropped, the arms of a
                ``? :`` swapped, an ``if`` condition negated;
``constant``    one bit of a sized constant flipped;
``off_by_one``  a constant operand of ``+``, ``-``, ``<``, ``>`` moved by one, a bit index or the
                top of a part select moved by one;
``stuck``       a one-bit valid, ready or control net (``*valid``, ``*ready``, ``*first``,
                ``*last``, ``*empty``, ``*done``, ``saturated``, ``en``) stuck at 0 or 1: its
                drivers are replaced by the constant, or, for an input port, its reads.

Each mutant is also labelled with the part of the unit it hits (``region``): ``handshake``
(the top: stream handshake, control pipeline, saturation counter), ``datapath`` (a lane's
product and accumulator) or ``requantizer``.  Every mutant changes exactly one line and keeps
the Verilog well formed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CATEGORIES", "Mutant", "apply_mutant", "find_mutants", "select_mutants"]

CATEGORIES = ("operator", "constant", "off_by_one", "stuck")

_TOKEN = re.compile(r"""
    (?P<esc>\\\S+\s)                                   # escaped identifier (ends at whitespace)
  | (?P<const>\d+'[hdbo][0-9a-fA-FxzXZ_]+)             # sized constant
  | (?P<sys>\$(?:signed|unsigned))                     # system function
  | (?P<id>[A-Za-z_][\w$]*)                            # identifier
  | (?P<num>\d+)                                       # plain number
  | (?P<op>>>>|<<<|>>|<<|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!<>?:])
  | (?P<punct>[()\[\]{},;=])
  | (?P<ws>\s+)
""", re.VERBOSE)

#: Binary operator swaps.
_BINARY_SWAP = {"+": "-", "-": "+", "&": "|", "|": "&", "^": "&", "<": "<=", "<=": "<", ">": ">=", ">=": ">",
                ">>>": ">>", ">>": "<<", "<<": ">>", "*": "+", "==": "!=", "!=": "=="}
_STUCK_NAME = re.compile(r"(valid|ready|first|last|empty|done|saturated|^en)$")


@dataclass(frozen=True)
class Mutant:
    """One fault in the generated Verilog.

    Attributes
    ----------
    id : str
        Stable name: ``<category>-<module>-L<line>-<k>``, ``stuck-<module>-<net>-<0|1>``.
    category : str
        One of :data:`CATEGORIES`.
    region : str
        ``handshake``, ``datapath`` or ``requantizer``.
    module : str
        The Verilog module (instance path) it is in.
    line : int
        1-based line number in the Verilog (for ``stuck`` mutants the first line changed).
    description : str
        What was changed, e.g. ``'+' -> '-' in  assign total = ...``.
    edits : tuple of (int, str)
        ``(line, new text)`` pairs (0-based lines) that make the mutant.
    """

    id: str
    category: str
    region: str
    module: str
    line: int
    description: str
    edits: tuple[tuple[int, str], ...]

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "region": self.region, "module": self.module,
                "line": self.line, "description": self.description}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:                      # anything unexpected: one character as punctuation
            out.append(("punct", text[pos]))
            pos += 1
            continue
        out.append((m.lastgroup, m.group()))
        pos = m.end()
    return out


def _region(module: str) -> str:
    leaf = module.rsplit(".", 1)[-1] if "." in module else ""
    if not leaf:
        return "handshake"
    if leaf.startswith("lane"):
        return "datapath"
    return "requantizer"


def _const_value(tok: str) -> tuple[int, str, int]:
    width, rest = tok.split("'", 1)
    base = rest[0]
    digits = rest[1:].replace("_", "")
    value = int(digits, {"h": 16, "d": 10, "b": 2, "o": 8}[base])
    return int(width), base, value


def _const_text(width: int, base: str, value: int) -> str:
    value &= (1 << width) - 1
    if base == "d":
        return f"{width}'d{value}"
    if base == "b":
        return f"{width}'b{value:0{width}b}"
    return f"{width}'h{value:0{max(1, -(-width // 4))}x}"


def _prev_operand(toks, i) -> bool:
    """Is the token before ``i`` (skipping blanks) the end of an operand?"""
    j = i - 1
    while j >= 0 and toks[j][0] == "ws":
        j -= 1
    return j >= 0 and (toks[j][0] in ("esc", "const", "id", "num") or toks[j][1] in (")", "]", "}"))


def _next_index(toks, i, step):
    j = i + step
    while 0 <= j < len(toks) and toks[j][0] == "ws":
        j += step
    return j


@dataclass
class _Line:
    module: str
    index: int
    text: str


def _statement(text: str):
    """Split a mutable statement into ``(prefix, rhs, suffix)``, or None.

    Mutable: ``assign LHS = RHS;``, a blocking ``LHS = RHS;`` or a non-blocking ``LHS <= RHS;``
    (RHS only), and ``if (COND) begin`` (COND).
    """
    m = re.match(r"^(\s*assign\s+.+?\s=\s)(.*)(;\s*)$", text)
    if m:
        lhs = m.group(1)
        if re.search(r"\\\S*[.\[]", lhs):      # Amaranth's named views of payload fields
            return None
        return m.groups()
    m = re.match(r"^(\s*(?:\\\S+\s|[A-Za-z_][\w$]*)\s*<?=\s)(.*)(;\s*)$", text)
    if m:
        return m.groups()
    m = re.match(r"^(\s*(?:end else )?if \()(.*)(\) begin\s*)$", text)
    if m and "dump_module" not in m.group(2):
        return m.groups()
    return None


def _join(toks) -> str:
    return "".join(t for _, t in toks)


def _line_mutants(ln: _Line) -> list[tuple[str, str, str]]:
    """``(category, description, new line)`` for every fault on one line."""
    parts = _statement(ln.text)
    if parts is None:
        return []
    prefix, rhs, suffix = parts
    toks = _tokens(rhs)
    out: list[tuple[str, str, str]] = []
    is_if = prefix.rstrip().endswith("(")
    short = ln.text.strip()

    # A token repeated on one line (a sign bit replicated into a concatenation, the same
    # constant twice) gives one fault per kind of change: the last occurrence, the lowest bit
    # of a Yosys concatenation.
    last_seen: dict[tuple[str, str], int] = {}

    def emit(category, what, new_toks):
        key = (category, what)
        if key in last_seen:
            out[last_seen[key]] = (category, f"{what} in `{short}`", prefix + _join(new_toks) + suffix)
            return
        last_seen[key] = len(out)
        out.append((category, f"{what} in `{short}`", prefix + _join(new_toks) + suffix))

    if is_if:
        out.append(("operator", f"condition negated in `{short}`", f"{prefix}!({rhs}){suffix}"))
    for i, (kind, tok) in enumerate(toks):
        if kind == "op":
            binary = _prev_operand(toks, i)
            if binary and tok in _BINARY_SWAP:
                new = list(toks)
                new[i] = ("op", _BINARY_SWAP[tok])
                emit("operator", f"'{tok}' -> '{_BINARY_SWAP[tok]}'", new)
            elif not binary and tok in ("~", "!"):
                new = list(toks)
                new[i] = ("ws", "")
                emit("operator", f"unary '{tok}' dropped", new)
            elif tok == "?":
                # swap the arms of a top-level ternary `c ? a : b` (the whole RHS)
                colon = [k for k in range(i + 1, len(toks)) if toks[k] == ("op", ":")]
                if len(colon) == 1 and "?" not in _join(toks[i + 1:]):
                    a, b = toks[i + 1:colon[0]], toks[colon[0] + 1:]
                    emit("operator", "'? :' arms swapped", toks[:i + 1] + b + [("op", " :")] + a)
        elif kind == "const":
            width, base, value = _const_value(tok)
            bit = (width - 1) if width > 1 and value == 0 else (value & -value).bit_length() - 1 if value else 0
            for b in sorted({0, bit, width - 1}):
                new = list(toks)
                new[i] = ("const", _const_text(width, base, value ^ (1 << b)))
                emit("constant", f"bit {b} of {tok} flipped", new)
            j, k = _next_index(toks, i, -1), _next_index(toks, i, 1)
            neighbours = {toks[j][1] if j >= 0 else "", toks[k][1] if k < len(toks) else ""}
            if neighbours & {"+", "-", "<", ">", "<=", ">="} or (j >= 0 and toks[j][1] == "(" and
                                                             k < len(toks) and toks[k][1] == ")"):
                for d in (1, -1):
                    if 0 <= value + d < (1 << width):
                        new = list(toks)
                        new[i] = ("const", _const_text(width, base, value + d))
                        emit("off_by_one", f"{tok} {'+' if d > 0 else '-'} 1", new)
        elif kind == "punct" and tok == "[":
            close = next((k for k in range(i + 1, len(toks)) if toks[k][1] == "]"), None)
            if close is None:
                continue
            inner = _join(toks[i + 1:close])
            m = re.fullmatch(r"(\d+)(?::(\d+))?", inner)
            if not m:
                continue
            hi, lo = int(m.group(1)), m.group(2)
            if lo is None:
                new_inner = str(hi - 1 if hi > 0 else hi + 1)
            elif hi - 1 >= int(lo):
                new_inner = f"{hi - 1}:{lo}"
            else:
                continue
            new = toks[:i + 1] + [("num", new_inner)] + toks[close:]
            emit("off_by_one", f"[{inner}] -> [{new_inner}]", new)
    return out


def _modules(lines: Sequence[str]) -> list[_Line]:
    out, module = [], None
    for k, text in enumerate(lines):
        m = re.match(r"^module\s+(\\\S+|\w+)", text)
        if m:
            module = m.group(1).lstrip("\\")
            continue
        if text.startswith("endmodule"):
            module = None
            continue
        if module is not None:
            out.append(_Line(module, k, text))
    return out


def _stuck_mutants(body: list[_Line]) -> list[tuple[str, str, int, list[tuple[int, str]]]]:
    """``(module, description, first line, edits)`` for stuck-at faults of one-bit control nets."""
    by_module: dict[str, list[_Line]] = {}
    for ln in body:
        by_module.setdefault(ln.module, []).append(ln)
    out = []
    for module, lines in by_module.items():
        one_bit: dict[str, str] = {}
        for ln in lines:
            m = re.match(r"^\s*(input|output|wire|reg)\s+(\\\S+|[A-Za-z_][\w$]*)\s*(?:=.*)?;", ln.text)
            if m and _STUCK_NAME.search(m.group(2)) and not re.search(r"[.\[\\]", m.group(2)):
                if one_bit.get(m.group(2)) != "input":
                    one_bit[m.group(2)] = m.group(1)
        for name, decl in sorted(one_bit.items()):
            pat = re.escape(name)
            drivers = []
            for ln in lines:
                if re.match(rf"^\s*assign\s+{pat}\s*=", ln.text) or re.match(rf"^\s*{pat}\s*<?=\s", ln.text):
                    drivers.append(ln)
            for value in (0, 1):
                const = f"1'h{value}"
                edits = []
                if drivers:
                    for ln in drivers:
                        head = re.match(rf"^(\s*(?:assign\s+)?{pat}\s*<?=\s)", ln.text).group(1)
                        if f"{head}{const};" != ln.text.rstrip():
                            edits.append((ln.index, f"{head}{const};"))
                elif decl == "input":
                    word = re.compile(rf"(?<![\w$\\.]){pat}(?![\w$\[.])" if not name.startswith("\\")
                                      else rf"{pat}")
                    for ln in lines:
                        if re.match(r"^\s*(input|output|wire|reg)\s", ln.text) or "dump_module" in ln.text:
                            continue
                        if _statement(ln.text) is None and not ln.text.strip().startswith("."):
                            continue
                        new = word.sub(const, ln.text)
                        if new != ln.text:
                            edits.append((ln.index, new))
                if edits:
                    out.append((module, f"{name.strip()} stuck at {value}", edits[0][0], edits))
    return out


def _names(toks) -> set[str]:
    return {t.strip().lstrip("\\") for k, t in toks if k in ("esc", "id")} - {"begin", "end", "if", "else"}


def _target(prefix: str) -> str | None:
    m = re.match(r"^\s*(?:assign\s+)?(\\\S+|[A-Za-z_][\w$]*)", prefix)
    return m.group(1).lstrip("\\") if m else None


def _live_lines(body: list[_Line]) -> set[int]:
    """Indices of the statements whose target reaches an output or a submodule (others are
    Amaranth's unused named copies, where any fault is invisible)."""
    by_module: dict[str, list[_Line]] = {}
    for ln in body:
        by_module.setdefault(ln.module, []).append(ln)
    live_lines: set[int] = set()
    for lines in by_module.values():
        roots: set[str] = set()
        reads: dict[str, set[str]] = {}
        stmt_target: dict[int, str] = {}
        for ln in lines:
            m = re.match(r"^\s*output\s+(?:signed\s+)?(?:\[[^\]]+\]\s*)?(\\\S+|\w+)", ln.text)
            if m:
                roots.add(m.group(1).lstrip("\\"))
                continue
            if re.match(r"^\s*\.", ln.text):                  # submodule port connection
                inner = ln.text[ln.text.index("(") + 1:] if "(" in ln.text else ""
                roots |= _names(_tokens(inner))
                continue
            parts = _statement(ln.text)
            if parts is None:
                continue
            prefix, rhs, _ = parts
            names = _names(_tokens(rhs))
            if prefix.rstrip().endswith("("):                  # if condition: kept
                roots |= names
                continue
            t = _target(prefix)
            if t is None:
                continue
            stmt_target[ln.index] = t
            reads.setdefault(t, set()).update(names)
        live, todo = set(), list(roots)
        while todo:
            name = todo.pop()
            if name in live:
                continue
            live.add(name)
            todo.extend(reads.get(name, ()))
        live_lines |= {i for i, t in stmt_target.items() if t in live}
        live_lines |= {ln.index for ln in lines if ln.index not in stmt_target}
    return live_lines


def find_mutants(verilog: str) -> list[Mutant]:
    """Every fault the generator knows for this Verilog, in file order.

    Statements whose result reaches no output (Amaranth's named copies of ports and
    payload fields) are left out: a fault there cannot be seen.
    """
    lines = verilog.splitlines()
    body = _modules(lines)
    live = _live_lines(body)
    body = [ln for ln in body if ln.index in live]
    out: list[Mutant] = []
    for ln in body:
        for k, (category, description, new) in enumerate(_line_mutants(ln)):
            out.append(Mutant(f"{category}-{ln.module}-L{ln.index + 1}-{k}", category, _region(ln.module),
                              ln.module, ln.index + 1, description, ((ln.index, new),)))
    for module, description, first, edits in _stuck_mutants(body):
        name, value = description.split(" ", 1)[0], description.rsplit(" ", 1)[-1]
        out.append(Mutant(f"stuck-{module}-{name}-{value}", "stuck", _region(module), module, first + 1,
                          description, tuple(edits)))
    return out


def apply_mutant(verilog: str, mutant: Mutant) -> str:
    """The Verilog with ``mutant``'s lines replaced."""
    lines = verilog.splitlines()
    for index, text in mutant.edits:
        lines[index] = text
    return "\n".join(lines) + "\n"


def select_mutants(mutants: Sequence[Mutant], n: int, seed: int) -> list[Mutant]:
    """``n`` mutants drawn with ``seed``, round-robin over (category, region) so that every kind of
    fault in every part of the unit is drawn before any repeats (deterministic)."""
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[Mutant]] = {}
    for m in mutants:
        strata.setdefault((m.category, m.region), []).append(m)
    keys = sorted(strata)
    for k in keys:
        rng.shuffle(strata[k])
    rng.shuffle(keys)
    out: list[Mutant] = []
    while len(out) < n and any(strata[k] for k in keys):
        for k in keys:
            if strata[k] and len(out) < n:
                out.append(strata[k].pop())
    return out
