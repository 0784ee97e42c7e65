"""Views of result documents. No view re-runs a model."""
