"""openclip-benchmark."""
