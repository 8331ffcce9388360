#!/usr/bin/env bash
# Oracle of the LEWEL_B step (tests/oracle/lewel_step.py) tested on dumps that PyTorch makes
# (tests/oracle/make_dump.py, float32, ResNet-18 small stem, batch 8, 16 px to keep it short;
# size 32 is make_dump's default and is checked by hand, docs/engine.md): a correct dump passes,
# for 1 and 2 BN groups; a dump with one wrong gradient, one wrong updated weight or a wrong
# loss fails, and the comparer says which tensor group.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/tests/t/tap.sh"
PY=${LWL_PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import torch, torchvision, numpy' 2>/dev/null; then
    echo "1..0 # SKIP $PY lacks torch/torchvision/numpy (make deps)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here/tests/oracle"

ok "make_dump: groups 1; functional net equals torchvision's and nn.Conv1d's" \
    "$PY" make_dump.py -o "$tmp/g1.st" --groups 1 --size 16 --selfcheck \
    --variant "$tmp/bad_grad.st=grad.proj.0.weight:0.1" \
    --variant "$tmp/bad_after.st=after.layer3.0.conv1.weight:1e-4" \
    --variant "$tmp/bad_loss.st=loss:1e-4"
ok "make_dump: groups 2, target ema" \
    "$PY" make_dump.py -o "$tmp/g2.st" --groups 2 --size 16 --seed 1 --target ema \
    --optimizer lars

"$PY" lewel_step.py --no-fp32-floor "$tmp/g1.st" "$tmp/bad_grad.st" "$tmp/bad_after.st" \
    "$tmp/bad_loss.st" "$tmp/g2.st" >"$tmp/out" 2>&1
rc=$?
sed 's/^/# /' "$tmp/out"
is "$rc" 1 "the comparer fails overall (three dumps are wrong)"
# Which TAP lines failed, as "file group" pairs, in order.
fails=$(awk '/^(not )?ok .* tensors named/ { g = $4; next } /^not ok/ { print g, $5 }' \
        "$tmp/out" | tr '\n' ' ')
is "$fails" "bad_grad.st: grad.head: bad_after.st: after.params: bad_loss.st: loss: " \
    "exactly the perturbed groups fail"
is "$(grep -c '^ok' "$tmp/out")" "$(( $(grep -c '^\(not \)\?ok' "$tmp/out") - 3 ))" \
    "every other group passes, g1.st and g2.st entirely"
finish
