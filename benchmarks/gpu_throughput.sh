#!/usr/bin/env bash
# The GPU figures of `benchmark throughput`: random-init ViT-B-32, ViT-B-16 and ViT-L-14 (no weights, no network),
# image and text towers, amp (fp16 autocast) and fp32, batch sizes 1 to 1024, into ./throughput (one JSON per model,
# throughput.csv, throughput.png), then the best samples/s per model, mode and precision with the GPU and versions.
# `benchmark plan` then uses these measured speeds for the ViT-B and ViT-L families on this GPU.
#
# Run on a machine with a CUDA GPU, from the repository root: bash benchmarks/gpu_throughput.sh
# Sanity reference (timm's published CLIP image towers, fp16, RTX 4090, batch 1024): ViT-B/32 12,151 img/s, ViT-L/14 785.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-throughput}"
BATCHES="${BATCHES:-1,8,32,64,128,256,512,1024}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for model in ViT-B-32 ViT-B-16 ViT-L-14; do
  uv run benchmark throughput -m "$model" --random-init --device cuda --mode image,text --precision amp,fp32 \
    --batch-sizes "$BATCHES" --warmup 3 --iters 10 --out "$OUT"
done

uv run python - "$OUT" <<'PY'
import csv, json, sys
from pathlib import Path

out = Path(sys.argv[1])
runs = sorted(out.glob("throughput-*.json"))
env = json.loads(runs[-1].read_text())["environment"]
print(f"GPU: {env['device_name']}; versions: {env['versions']}")
best = {}
for row in csv.DictReader(open(out / "throughput.csv")):
    if row["status"] == "ok" and row["device"].startswith("cuda"):
        key = (row["model"], row["mode"], row["precision"])
        if float(row["samples_per_s"]) > float(best.get(key, {}).get("samples_per_s", 0)):
            best[key] = row
print("| model | mode | precision | best batch | samples/s | ms/batch p50 | peak GiB |")
print("|---|---|---|---:|---:|---:|---:|")
for (model, mode, precision), row in sorted(best.items()):
    peak = int(row["peak_memory_bytes"] or 0) / 2**30
    print(f"| {model} | {mode} | {precision} | {row['batch_size']} | {float(row['samples_per_s']):,.0f} "
          f"| {float(row['ms_p50']):.2f} | {peak:.1f} |")
PY
