"""Grounded decoding: a grammar that admits exactly the completions whose every citation the evidence rule grounds.

`contract.evidence` judges a rationale after the fact; this builds, from the same prompt index, the language of
completions `<think>…</think><answer>normal|anomalous</answer>` in which each `"quote"` is text of the line it
names, from the start of a word, long enough to be evidence. Given to the engine as a structured-output constraint
(xgrammar EBNF), it lets the model choose which lines to cite and what to conclude, never what a line says.
The grammar is linear in the prompt: one rule per character of its lines.
"""

from __future__ import annotations

from contract.completion_format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, VERDICTS
from contract.evidence import index_prompt, is_meaningful_quote

# Free text between citations, on the rationale's one line: no quote mark (every quote is a citation's), no tag
# (`<` may open `<NUM>`, not `</`, `<t`, `<a` or a special token's `<|`).
# Unbounded: a bound (`{0,200}`) is exact but costs xgrammar ~300x per token (2.8 ms against 9 us, measured).
_FREE = '([^"<\\n] | "<" [^"</at|\\n])*'
# What ends the free text right before a citation, so that its `L` starts a word and no `L3, ` or `L3-` before it
# joins its line numbers (`L3, L7 "..."` would name the group L3,L7): punctuation; a space after anything but a
# comma, a dash or a blank; a comma or a dash (and a space) after anything but a digit or a blank. Right after
# a citation (its closing quote) a bare comma may lead the next one.
_BEFORE_CITATION = r'([(:;.] | [^,\- \t\n"<] " " | [^0-9 \t\n"<] [,\-] " "?)'


def literal(text: str) -> str:
    """`text` as an EBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def quote_rules(name: str, text: str, min_quote_chars: int = 12, min_words: int = 2) -> tuple[list[str], str | None]:
    """Rules for every quote of `text` that starts at a word, is meaningful evidence and stops anywhere after (the
    teachers cut quotes mid-word), and the expression that starts one (None: no such quote). A quote mark in the
    text ends every quote that reaches it.

    One rule per character (`name_k`: character k, then optionally k+1, ...): linear in the text.
    """
    rules, starts = [], []
    for k, char in enumerate(text):
        if char == '"':
            continue
        follows = k + 1 < len(text) and text[k + 1] != '"'
        rules.append(f"{name}_{k} ::= {literal(char)}" + (f" {name}_{k + 1}?" if follows else ""))
    for start in range(len(text)):
        if text[start] in ' "' or (start > 0 and text[start - 1] != " "):
            continue
        for end in range(start + 1, len(text) + 1):
            if text[end - 1] == '"':
                break
            if is_meaningful_quote(text[start:end].strip(), min_quote_chars, min_words, whole=text):
                more = end < len(text) and text[end] != '"'
                starts.append(literal(text[start:end]) + (f" {name}_{end}?" if more else ""))
                break
    return rules, ("(" + " | ".join(starts) + ")" if starts else None)


def grounded_grammar(
    prompt: str,
    min_quote_chars: int = 12,
    min_words: int = 2,
) -> str:
    """The reasoning-mode completions for `prompt` in which every citation is grounded, as xgrammar EBNF."""
    rules, citations = [], []
    for g, group in enumerate(index_prompt(prompt).groups):
        quote_rule, quote = quote_rules(f"q{g}", group.text, min_quote_chars, min_words)
        if quote is None:
            continue
        rules.extend(quote_rule)
        numbers = " | ".join(literal(str(n)) for n in group.numbers)
        citations.append(f'"L" ({numbers}) " \\"" {quote} "\\""')
    verdicts = " | ".join(literal(v) for v in VERDICTS)
    lead = f'(free {_BEFORE_CITATION})? citation | "," " "? citation'
    body = f"({lead})* free" if citations else "free"
    tags = literal(THINK_OPEN), literal(THINK_CLOSE + ANSWER_OPEN), literal(ANSWER_CLOSE)
    head = [
        f"root ::= {tags[0]} body {tags[1]} ({verdicts}) {tags[2]}",
        f"body ::= {body}",
        f"free ::= {_FREE}",
    ]
    if citations:
        head.append("citation ::= " + " | ".join(citations))
    return "\n".join(head + rules) + "\n"
