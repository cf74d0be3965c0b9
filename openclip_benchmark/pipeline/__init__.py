"""The use cases: plan from the tracker, launch, run pairs, record outcomes, sync, summarise. The CLI and
`benchmark demo` both call these; nothing else orchestrates."""
