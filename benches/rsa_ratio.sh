#!/usr/bin/env bash
# validate-azure-ad-token decisions/s against OpenSSL's RSA-2048 verify/s, measured in one run.
#
# Issue 12's target: decisions/s >= 0.70 x `openssl speed -seconds 3 rsa2048` verify/s. The two
# figures only compare when they come from the same minutes on the same (shared, drifting)
# machine, so each round runs OpenSSL, the decision bench (`benches/policy.rs`, its paired
# rounds only: the criterion groups are filtered out), and OpenSSL again; a round's ratio is its
# decisions/s over the mean of its two OpenSSL figures. Prints every round, the medians and the
# load average before and after. The machine's other work shows in the load: measure when it is
# low, and say what it was.
#
# Usage: benches/rsa_ratio.sh            (ROUNDS=5 by default, SECONDS_PER_RUN=3)
# Needs: openssl (the command), a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
seconds="${SECONDS_PER_RUN:-3}"

cargo bench --locked --bench policy --no-run --quiet 2>/dev/null || cargo bench --locked --bench policy --no-run

openssl_verify() {
  # "rsa 2048 bits 0.000584s 0.000017s   1712.3  59172.9": the last field is verify/s.
  openssl speed -seconds "$seconds" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ { print $NF }'
}

decisions() {
  RSA_RATIO_SECONDS="$seconds" cargo bench --locked --quiet --bench policy -- paired-rounds-only 2>/dev/null \
    | awk -F= '/^decisions_per_second=/ { print $2 }'
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "round openssl_verify/s decisions/s openssl_verify/s ratio"
ratios=() openssls=() decisions_all=()
for round in $(seq "$rounds"); do
  a=$(openssl_verify)
  d=$(decisions)
  b=$(openssl_verify)
  r=$(awk -v a="$a" -v b="$b" -v d="$d" 'BEGIN { printf "%.3f", d / ((a + b) / 2) }')
  echo "$round $a $d $b $r"
  ratios+=("$r") openssls+=("$a" "$b") decisions_all+=("$d")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median openssl verify/s: $(median "${openssls[@]}")"
echo "median decisions/s:      $(median "${decisions_all[@]}")"
echo "median ratio:            $(median "${ratios[@]}") (target >= 0.70)"
