#!/usr/bin/env bash
# Materialize the asset graph with its checks through the Dagster CLI on a small corpus, as CI does.
#
#   scripts/ci_materialize.sh [CONFIG]        (default: configs/ci.yaml)
#
# Every configured source is registered as a partition of a fresh, temporary Dagster instance and
# materialized with `dagster asset materialize`; all state (instance, LanceDB tables, caches) goes to a
# temporary folder, never the repository. Exits non-zero when a run fails, which it does when a blocking
# asset check fails (the assets downstream of it are skipped); the script also reads every check result
# back from the instance and fails on a failed blocking check even if the CLI had not.
#
# Environment: CI_SELECT (asset selection, default '*'), CI_WORK_DIR (keep state there instead of a
# temporary folder that is removed on exit), PYTHON (default .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="$(realpath "${1:-configs/ci.yaml}")"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DAGSTER="$(dirname "$PYTHON")/dagster"
SELECT="${CI_SELECT:-*}"

if [[ -n "${CI_WORK_DIR:-}" ]]; then
  WORK="$CI_WORK_DIR"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/ragindex-ci.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK/dagster_home" "$WORK/data"
# A fresh instance with an empty dagster.yaml: runs, event logs and IO manager outputs under DAGSTER_HOME.
: > "$WORK/dagster_home/dagster.yaml"
export DAGSTER_HOME="$WORK/dagster_home"
export RAGINDEX_DATA_DIR="$WORK/data"
export RAGINDEX_CONFIG="$CONFIG"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false GX_ANALYTICS_ENABLED=False

echo "ci: config $CONFIG, state in $WORK"
# Each configured source as a partition (source|table) of the configured table, registered in the instance.
PARTITIONS="$("$PYTHON" - <<'EOF'
from dagster import DagsterInstance

from ragindex.config import load_config
from ragindex_app.assets.partitions import BuildPartition

config = load_config()
instance = DagsterInstance.get()
partitions = [BuildPartition(s.name, config.index.table) for s in config.sources]
for partition in partitions:
    partition.register(instance)
print(" ".join(str(p.key) for p in partitions))
EOF
)"

status=0
for partition in $PARTITIONS; do
  echo "ci: dagster asset materialize --select '$SELECT' --partition '$partition'"
  if ! "$DAGSTER" asset materialize -m ragindex_app.pipelines.definitions --select "$SELECT" --partition "$partition"; then
    echo "ci: materialization of partition '$partition' failed" >&2
    status=1
  fi
done

# Read every asset check result of these runs back from the instance: a summary, and a failure for any
# failed blocking check (belt and braces: the CLI already exits non-zero when one fails).
"$PYTHON" - <<'EOF' || status=1
import sys

from dagster import DagsterEventType, DagsterInstance

instance = DagsterInstance.get()
records = [entry for run in instance.get_runs()
           for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
failed_blocking = []
print(f"{'asset':<14} {'check':<20} {'partition':<10} {'blocking':<8} result")
for record in sorted(records, key=lambda r: r.timestamp):
    evaluation = record.dagster_event.event_specific_data
    result = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
    print(f"{evaluation.asset_key.to_user_string():<14} {evaluation.check_name:<20} "
          f"{evaluation.partition or '':<10} {str(bool(evaluation.blocking)):<8} {result}")
    if evaluation.description and not evaluation.passed:
        print(f"    {evaluation.description}")
    if not evaluation.passed and evaluation.blocking:
        failed_blocking.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
if not records:
    print("ci: no asset check ran", file=sys.stderr)
    sys.exit(1)
if failed_blocking:
    print(f"ci: blocking checks failed: {', '.join(failed_blocking)}", file=sys.stderr)
    sys.exit(1)
EOF

[[ $status -eq 0 ]] && echo "ci: materialization and checks passed" || echo "ci: FAILED" >&2
exit $status
