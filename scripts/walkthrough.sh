#!/usr/bin/env bash
# The README's curl walkthrough, run as a test: a deposit, a transfer with change, a withdrawal with
# change, and a receipt lookup against a fresh node. Usage: scripts/walkthrough.sh [path/to/per]
set -euo pipefail
PER=$(realpath "${1:-target/debug/per}")
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PER" serve --listen "127.0.0.1:$port" --log-format text 2>server.log &
pid=$!
URL=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.1; done

# --- the walkthrough (as in README.md) ---
TOKEN=$(cat per-data/deposit.token)
A=$("$PER" note --amount 1000)
curl -s -X POST "$URL/deposit" -H "Authorization: Bearer $TOKEN" \
  -d "$(jq -n --argjson a "$A" '{commitment: $a.commitment, amount: $a.note.amount, l1_deposit_ref: "l1-sig-demo-1"}')" \
  | tee deposit.json
LEAF=$(jq .leaf_index deposit.json)
B=$("$PER" note --amount 600); C=$("$PER" note --amount 400)
curl -s -X POST "$URL/transfer" \
  -d "$(jq -n --argjson a "$A" --argjson b "$B" --argjson c "$C" --argjson leaf "$LEAF" \
        '{sender: {note: $a.note, leaf_index: $leaf, secret: $a.secret, nonce: $a.nonce}, outputs: [$b.note, $c.note]}')" \
  | tee transfer.json
CHANGE_LEAF=$(jq '.leaf_indices[1]' transfer.json)
curl -s -X POST "$URL/withdraw" \
  -d "$(jq -n --argjson c "$C" --argjson leaf "$CHANGE_LEAF" \
        '{sender: {note: $c.note, leaf_index: $leaf, secret: $c.secret, nonce: $c.nonce}, amount: "150",
          recipient: "11111111111111111111111111111111", change: {owner: $c.note.owner, blinding: $c.note.blinding}}')" \
  | tee withdraw.json
curl -s "$URL/receipt/$(jq -r .receipt_id transfer.json)" | tee receipt.json
curl -s "$URL/pool/info" | tee pool.json
# --- checks ---
jq -e '.success and .leaf_index == 0' deposit.json >/dev/null
jq -e '.success and .leaf_indices == [1, 0]' transfer.json >/dev/null   # receiver new leaf, change into the freed leaf
jq -e '.success and .leaf_indices == [0]' withdraw.json >/dev/null
jq -e '.status == "committed" and .kind == "transfer"' receipt.json >/dev/null
jq -e --slurpfile w withdraw.json '.seq == 3 and .nullifier_count == 2 and .merkle_root == $w[0].new_root' pool.json >/dev/null
# Privacy: the server log never holds a secret or blinding that was sent.
for v in "$(jq -r .secret <<<"$A")" "$(jq -r .note.blinding <<<"$B")"; do
  if grep -q "$v" server.log; then echo "walkthrough: secret found in server log" >&2; exit 1; fi
done
echo
echo "walkthrough: 1 passed, 0 failed"
