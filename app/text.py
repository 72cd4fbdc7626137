"""Text from data, shown as text: the ONE helper for every string the dashboard did not
write itself (provenance fields, class, layer and endpoint names, job ids, URIs, analyst
names and notes, messages that quote any of these).

Streamlit renders most elements as markdown: an ``attack`` field of
``[click](http://example.invalid) ![x](http://example.invalid/x.png)`` would become a link
and a remote image. :func:`literal` turns any string into markdown that shows exactly
that string, and nothing else:

- every ASCII punctuation character is backslash-escaped (no emphasis, links, images,
  headings, lists, tables, math, colour directives or raw HTML);
- a word that GitHub-flavoured markdown would turn into a link by itself (``http://…``,
  ``www.…``, an e-mail address) becomes an inline code span, in which nothing is parsed;
- ``:material/…`` (which Streamlit turns into an icon before parsing, even in code) is
  broken with an invisible word joiner;
- line breaks are kept as line breaks.

Charts have their own escaping (:func:`ladis_core.viz.style.plot_text`); dataframes and
widget options are never parsed.
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
#: what GFM's autolink-literal extension links without any markup
_AUTOLINKED = re.compile(r"https?://|www\.|@", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def _code_span(token: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", token)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if token.startswith("`") or token.endswith("`") else ""
    return f"{fence}{pad}{token}{pad}{fence}"


def _line(line: str) -> str:
    parts = []
    for token in line.split():
        parts.append(
            _code_span(token) if _AUTOLINKED.search(token) else _PUNCTUATION.sub(r"\\\1", token)
        )
    return " ".join(parts)


def literal(value: object) -> str:
    """Markdown that renders as exactly ``str(value)`` (``""`` for ``None``), for use
    inside any Streamlit element that parses markdown::

        st.caption(f"Recorded provenance: {literal(attack)}")
    """
    if value is None:
        return ""
    text = str(value).replace(":material/", f":{_WORD_JOINER}material/")
    return "  \n".join(_line(line) for line in text.splitlines())
