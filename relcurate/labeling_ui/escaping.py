"""Make user-originated text (alt-text, file names, URLs, usernames) safe for Streamlit markdown.

Streamlit renders markdown in `st.markdown`, `st.caption`, image captions, `st.error`, ...; on top
of CommonMark it has LaTeX (`$`), colour/icon directives (`:red[...]`) and emoji shortcodes. A
`<script>` alt-text must show as those characters, and `**x**` as asterisks, never as markup.
"""
from __future__ import annotations

import html
import re

# Every ASCII punctuation character that means something to CommonMark/GFM or to Streamlit's
# extensions. `&` and `;` are left out because html.escape() produces entities with them.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:<>=\"'^@%/?,])")


def escape_md(text: object, max_len: int | None = None) -> str:
    """`text` as inert markdown: one line, HTML entities for <>&, backslash before punctuation."""
    s = " ".join(str(text).split())  # newlines/indentation would start blocks (code, headings)
    if max_len is not None and len(s) > max_len:
        s = s[: max_len - 1] + "…"
    s = html.escape(s, quote=False)  # & < >  ->  entities, shown literally by the renderer
    return _MD_SPECIAL.sub(r"\\\1", s)
