"""`similarity`: score a retrieval dataset pair by pair (stats: the pure arithmetic; score: encoding on one or N
ranks; outputs: the files rank 0 writes; kind: the run as a manifest kind, run here or as one node; nodes: the
nodes' parts in the store and their merge)."""
