"""The marks of an overview chart (tracking/charts.py) as SVG: one link per bucket and series.

A 90-day page holds a few thousand marks; drawn by the template language they cost more than
the queries behind them, so they are written here, every value through format_html (which
escapes it: titles carry version and assessment names, user data)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from tracking.charts import Chart, Drawn

register = template.Library()

_POINT = '<a href="{}"><circle cx="{}" cy="{}" r="3"><title>{}</title></circle></a>'
_BAR = '<a href="{}"><rect x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect></a>'


@register.simple_tag
def chart_marks(chart: Chart, series: Drawn) -> SafeString:
    if chart.kind == "line":
        rows = ((m.href, m.x, m.y, m.title) for m in series.marks)
        return format_html_join("", _POINT, rows)
    rows = ((m.href, m.x, m.y, m.width, m.height, m.title) for m in series.marks)
    return format_html_join("", _BAR, rows)
