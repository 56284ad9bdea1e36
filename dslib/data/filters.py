"""Rule-based filtering (DeepSeek-Coder §2.1), the StarCoder rules as the paper states them.

The code follows BigCode's ``preprocessing/filtering.py`` (FACTS §1a) with DeepSeek's wording where the
two differ: the character rule counts *alphabetic* characters (StarCoder counts alphanumeric ones) and
JSON/YAML files are kept at 50–5000 characters (StarCoder's default minimum is 100).
"""

from __future__ import annotations

from html.parser import HTMLParser

from dslib.config import DataConfig

# The reasons a file can fail, in the order they are checked; the first one that applies is reported.
RULE_REASONS = (
    "max_line_length",
    "avg_line_length",
    "alpha_fraction",
    "xml_header",
    "html_visible_text",
    "json_yaml_size",
)


class _VisibleText(HTMLParser):
    """Collects the text a browser would show: everything outside tags, ``<script>`` and ``<style>``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def html_visible_text(html: str) -> str:
    """The visible text of an HTML page, whitespace-collapsed (StarCoder strips script and style first)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split())


def rule_filter_reason(text: str, language: str | None, config: DataConfig | None = None) -> str | None:
    """Why ``text`` fails a §2.1 rule (one of :data:`RULE_REASONS`), or ``None`` when the file is kept."""
    config = config or DataConfig()
    lines = text.splitlines() or [""]
    lengths = [len(line) for line in lines]
    if max(lengths) > config.max_line_length:
        return "max_line_length"
    if sum(lengths) / len(lines) > config.max_avg_line_length:
        return "avg_line_length"
    if sum(c.isalpha() for c in text) < config.min_alpha_fraction * len(text):
        return "alpha_fraction"
    if language != "XSLT" and "<?xml version=" in text[:100]:
        return "xml_header"
    if language == "HTML":
        visible = len(html_visible_text(text))
        if visible < config.html_min_visible_fraction * len(text) or visible < config.html_min_visible_chars:
            return "html_visible_text"
    if language in ("JSON", "YAML") and not config.json_yaml_min_chars <= len(text) <= config.json_yaml_max_chars:
        return "json_yaml_size"
    return None
