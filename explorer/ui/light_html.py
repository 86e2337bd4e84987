"""What the dashboard's light components (fast_plot.py, light_table.py, thumb_gallery.py) share: each is a gr.HTML
drawn by the page from a template, with its own CSS and script, in a block like other components' and without
gr.HTML's own prose styling."""

from __future__ import annotations


def template_html(template: str, css: str, script: str, **more) -> dict:
    """gr.HTML's arguments for a component drawn from ``template`` (``css`` scoped to it, ``script`` run once when
    the page mounts it)."""
    return dict(
        html_template=template,
        css_template=css,
        js_on_load=script,
        container=True,
        padding=False,
        apply_default_css=False,
        **more,
    )


def sent_once(component, value, convert):
    """``convert(value)``, the form the component sends, remembered for the last value object: the dashboard makes
    it first to fingerprint what it sends (explorer.ui.changed), and Gradio's own postprocess of the same object
    then finds it ready. Another object (another session's) is converted anew."""
    last = getattr(component, "_last_sent", None)
    if last is not None and last[0] is value:
        return last[1]
    sent = convert(value)
    component._last_sent = (value, sent)
    return sent
