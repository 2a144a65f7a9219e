"""Self-contained HTML report pages: the demo's page and one per benchmark results folder.

:class:`Page` builds a page of sections (text, Markdown, tables, figures inlined as base64 PNG);
:func:`build_results_page` turns a benchmark's results folder into such a page.
"""

from hidlr.report.page import Page, Section
from hidlr.report.results import build_results_page

__all__ = ["Page", "Section", "build_results_page"]
