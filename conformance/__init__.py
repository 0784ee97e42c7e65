"""conformance: check language models against written standards, rule by rule."""

__version__ = "0.1.0"
