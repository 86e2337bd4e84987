"""The Gradio app: one module per tab, the API, shared components. The only package that imports gradio."""

from explorer.ui.demo import build_demo, launch, stage_examples

__all__ = ["build_demo", "launch", "stage_examples"]
