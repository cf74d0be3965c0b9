"""`benchmark throughput`: images/s and texts/s of OpenCLIP towers and of embedding endpoints, against batch size,
precision, resolution and pinned CPU workers. `settings` and `records` are pure (no torch); `timing` measures in this
process, `pinned` in worker processes pinned to cores, `endpoint` over HTTP; `plot` draws the summary."""
