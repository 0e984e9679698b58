#!/usr/bin/env bash
# Refits on real data: cpu-quick for 2 minutes on the CIFAR-10 JPEGs, then `hpo refit --top 2 --seeds 3`
# with one of its two workers killed by SIGKILL halfway, `hpo refit` again to resume, and the deck.
# Usage: bash bench/refit.sh [WORKDIR] (default /tmp/hpo-refit-bench); needs data/cifar10-jpeg.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/hpo-refit-bench}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
export HPO_DATA_DIR=$repo/data/cifar10-jpeg HPO_ARTIFACTS=$work/artifacts HPO_STORAGE=sqlite:///$work/hpo.db
cp -r "$repo/studies" "$repo/search_spaces" .
hpo run --study cpu-quick --budget 2m --devices cpu --workers 2 > run.out 2>&1
tail -1 run.out
hpo refit --study cpu-quick --top 2 --seeds 3 --devices cpu --workers 2 > refit1.out 2>&1 &
launcher=$!
python - <<'PY'
import os, signal, time
import optuna
from hpo.storage import open_storage
from hpo.workers.liveness import live_workers
storage = open_storage(os.environ["HPO_STORAGE"])
while True:
    try:
        study = optuna.load_study(study_name="cpu-quick.refit", storage=storage)
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        running = [t for t in study.trials if t.state.name == "RUNNING" and t.user_attrs.get("history")]
        if done and running and len(done) < 6:
            break
    except KeyError:
        pass
    time.sleep(1)
pids = [worker["pid"] for worker in live_workers(study)]
os.kill(pids[0], signal.SIGKILL)
print(f"killed worker {pids[0]} with {len(done)} refits complete and {len(running)} running")
PY
wait $launcher || echo "first refit exited with $? (one of its workers was killed)"
hpo refit --study cpu-quick --top 2 --seeds 3 --devices cpu --workers 2
python - <<'PY'
import collections, os
import optuna
from hpo.storage import open_storage
study = optuna.load_study(study_name="cpu-quick.refit", storage=open_storage(os.environ["HPO_STORAGE"]))
print("refit trials by state and reason:", dict(collections.Counter((t.state.name, t.user_attrs.get("stop_reason")) for t in study.trials)))
pairs = [(t.system_attrs["hpo:refit_of"], t.system_attrs["hpo:refit_seed"]) for t in study.trials if t.state.name == "COMPLETE"]
print("complete (trial, seed) pairs:", sorted(pairs), "each once:", len(set(pairs)) == len(pairs))
PY
hpo export --study cpu-quick --format pptx --out cpu-quick.pptx
soffice --headless --convert-to pdf cpu-quick.pptx > /dev/null 2>&1 && echo "rendered $work/cpu-quick.pdf"
