"""Weight formats, tensor layouts and architecture sources: the seam between a folder's files and the static facts.

`base.py` declares what a format answers (`WeightFormat`: which files it claims, a bounded header reader,
tensors with logical elements and stored bytes (`tensors.TensorInfo`), parameter counting, tensor slices for
the finiteness probe), what a quantized layout answers (`TensorLayout`: stored groups folded into the
model's tensors) and what an architecture source answers (`ArchitectureSource`: the raw config fields of a
folder). One module per format, layout or source; `registry.py` lists them. Nothing here imports torch.
"""
