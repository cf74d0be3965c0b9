"""`python -m openclip_benchmark.schemas`: write the JSON Schemas of the records from their models."""

from . import write

for path in write():
    print(path)
