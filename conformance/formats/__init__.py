"""Weight formats and architecture sources: the seam between a model folder's files and the static facts.

`base.py` declares what a format answers (`WeightFormat`: which files it claims, a bounded header reader,
`TensorInfo` with logical elements and stored bytes, parameter counting, tensor slices for the finiteness
probe) and what an architecture source answers (`ArchitectureSource`: the raw config fields of a folder).
One module per format or source; `registry.py` lists them. Nothing here imports torch.
"""
