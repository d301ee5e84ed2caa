"""Rich display in notebooks: the one mixin every result record inherits.

Jupyter, Colab and VS Code call ``_repr_html_`` (and ``_repr_markdown_``) on the value a
cell ends with. The records stay data: this module imports nothing, and the rendering
(:mod:`archstat.render.notebook`) is imported only when a notebook asks for it, so
importing a record never imports a renderer.
"""

from __future__ import annotations


class Display:
    """``_repr_html_``: the result's tables as :func:`archstat.render.render` gives them in
    ``html`` (human units, the exact integer in each cell's title), with its chart where
    matplotlib is installed; ``_repr_markdown_``: the same tables in Markdown."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        from archstat.render.notebook import notebook_html

        return notebook_html(self)

    def _repr_markdown_(self) -> str:
        from archstat.render import render

        return render(self, "markdown")
