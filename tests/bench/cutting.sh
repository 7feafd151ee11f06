#!/usr/bin/env bash
# The "Cutting series" table of README.md: the series one task exports (the samples of /metrics,
# comment lines aside) for each simulator profile, with every family, with the suggested lean
# denylist, and with an allowlist of the 2.x families only (SPEC §3.1); and the DogStatsD lines of
# one poll (the series of the 2.x families but ecs_task_exporter_status), with every family and
# with the lean set. Then what each entry of the lean set cuts from each profile's task, and which
# families the monitoring/ kit reads that the 2.x-only allowlist leaves without data. Checks that
# the lean set keeps every family the kit names that the task has.
#
# Usage: tests/bench/cutting.sh > table.md   (the markdown table on stdout, progress on stderr)
# Needs: cargo, curl. Builds the debug binaries, then runs ecs-task-sim and the exporter on
# 127.0.0.1 only (every request a new sample, a poll every 0.3 s); every process it starts is
# stopped on exit. Each run waits at most 10 s for its numbers.
set -euo pipefail
export LC_ALL=C # one sort order for sort and comm
cd "$(dirname "$0")/../.."

# shellcheck source=lib.sh
. tests/bench/lib.sh
log_as cutting
temp_work
need_tools cargo curl

PROFILES=(fargate ec2-bridge managed-instances ec2-awsvpc)
INTERVAL=0.3
# The suggested lean set (README, "Cutting series"): what the monitoring/ kit does not read.
LEAN='ecs_task_percpu_usage_ratio,ecs_task_cpu_kernelmode,ecs_task_cpu_usermode,ecs_task_cpu_throttle_*,ecs_task_mem_cache,ecs_task_disk_*_iops_total,ecs_task_network_*_packets_total,ecs_task_network_*_errors_total,ecs_task_network_*_dropped_total,ecs_container_cpu_user_seconds_total,ecs_container_cpu_system_seconds_total,ecs_task_exporter_status'
# The 2.x families (SPEC §3.1), as the 2.x exporter wrote them.
V2='ecs_task_cpu_*,ecs_task_percpu_usage_ratio,ecs_task_mem_*,ecs_task_disk_*,ecs_task_network_*,ecs_task_exporter_status'

T=${CARGO_TARGET_DIR:-target}
log "building the debug binaries"
cargo build --quiet --bins
EXPORTER=$T/debug/ecs-container-exporter
SIM=$T/debug/ecs-task-sim

answers() { curl -sf -o /dev/null "http://127.0.0.1:$1/metrics"; }

# scrape FILTER_ARGS...: starts the exporter against SIM_URL with these arguments, waits for a
# full poll (the task CPU ratio, which needs a window) and one more interval, writes /metrics to
# $work/metrics and stops the exporter.
scrape() {
  start_on_free_port answers "$work/exporter.err" "$EXPORTER" --metadata-url "$SIM_URL" \
    --bind-address 127.0.0.1 --exporter-port @PORT@ --interval "$INTERVAL" --log-level error "$@" ||
    die "the exporter did not start: $(cat "$work/exporter.err")"
  local full=0
  for _ in $(seq 200); do
    if curl -sf "http://127.0.0.1:$PORT/metrics" >"$work/metrics" &&
      grep -q '^ecs_task_cpu_usage_ratio{container_name="_task_"}' "$work/metrics"; then
      full=1
      break
    fi
    sleep 0.05
  done
  ((full)) || die "no full poll within 10 s ($*)"
  sleep "$INTERVAL"
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$work/metrics" || die "scrape failed ($*)"
  stop "$PID"
}

series() { grep -vc '^#' "$work/metrics" || true; }
# matching GLOB FILE: the samples of FILE whose family matches GLOB (`*` any run, whole name).
matching() {
  awk -v re="^${1//\*/.*}\$" '!/^#/ {name = $0; sub(/[{ ].*/, "", name); if (name ~ re) n++} END {print n + 0}' "$2"
}
# The series DogStatsD sends: the 2.x families but ecs_task_exporter_status (SPEC §4).
statsd_lines() {
  grep -E '^ecs_task_' "$work/metrics" | grep -vcE '^ecs_task_(info|exporter_status|ephemeral_storage_)' || true
}
families() { sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$work/metrics" | sort -u; }
share() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%d%%", 100 * a / b}'; }

# The families the monitoring kit's rules and dashboard name.
grep -ohE 'ecs_[a-z_]+' monitoring/*.yml monitoring/*.json | sort -u >"$work/kit"

: >"$work/kit-lost"
echo "| profile | containers | every family | lean set | 2.x families only | DogStatsD lines: every family → lean set |"
echo "|---|---:|---:|---:|---:|---:|"
for profile in "${PROFILES[@]}"; do
  log "$profile"
  start_sim "$SIM" "$work/sim" --profile "$profile" --refresh-secs 0
  scrape
  all=$(series)
  all_lines=$(statsd_lines)
  cp "$work/metrics" "$work/all-$profile"
  containers=$(grep -c '^ecs_container_info{' "$work/metrics" || true)
  families | comm -12 - "$work/kit" >"$work/kit-here"
  scrape --metric-denylist "$LEAN"
  lean=$(series)
  lean_lines=$(statsd_lines)
  missing=$(families | comm -13 - "$work/kit-here" | paste -sd ' ')
  [[ -z $missing ]] || die "$profile: the lean set drops what the monitoring kit reads: $missing"
  scrape --metric-allowlist "$V2"
  v2=$(series)
  families | comm -13 - "$work/kit-here" >>"$work/kit-lost"
  stop "$SIM_PID"
  echo "| $profile | $containers | $all | $lean ($(share "$lean" "$all")) | $v2 ($(share "$v2" "$all")) | $all_lines → $lean_lines |"
done

echo
header="| lean set entry: series it cuts |"
rule="|---|"
for profile in "${PROFILES[@]}"; do
  header+=" $profile |"
  rule+="---:|"
done
echo "$header"
echo "$rule"
IFS=, read -ra entries <<<"$LEAN"
for entry in "${entries[@]}"; do
  row="| \`$entry\` |"
  for profile in "${PROFILES[@]}"; do
    row+=" $(matching "$entry" "$work/all-$profile") |"
  done
  echo "$row"
done

echo
lost=$(sort -u "$work/kit-lost")
echo "The 2.x-only allowlist leaves these families that monitoring/ reads without data:"
for family in $lost; do
  files=$(grep -lw "$family" monitoring/*.yml monitoring/*.json | sed 's|.*/ecs-container-exporter\.||' | paste -sd ',' | sed 's/,/, /g')
  echo "- \`$family\` ($files)"
done
