"""conformance: check language models against written standards, rule by rule."""

__version__ = "0.1.0"
# The distribution's name on the package index (`pip install model-conformance`); the import package stays
# `conformance`. Package metadata is looked up under this name, never under "conformance", which is another project's.
DISTRIBUTION = "model-conformance"
