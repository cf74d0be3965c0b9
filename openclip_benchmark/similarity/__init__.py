"""`similarity`: score a retrieval dataset pair by pair (stats: the pure arithmetic; score: encoding on one or N
ranks; outputs: the files rank 0 writes)."""
