#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes the evaluation prompt set assets/prompts/held-out/ from the books the bundled 1,024-token
# model never trained on (kvstudio-cli train --split books; docs/bundled-model.md): for each
# passage below, its first whole verses (labels stripped, one verse per line, as the training
# text has them) up to 960 characters, so a prompt fits the model's 1,024 positions with room
# for nothing else to be cut. Needs the Debian packages bible-kjv and bible-kjv-text.
#
#   tools/make_prompt_set.sh            # rewrites the files (they are committed)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$here/assets/prompts/held-out
command -v bible > /dev/null || { echo "install bible-kjv and bible-kjv-text" >&2; exit 2; }
mkdir -p "$out"
# file name, bible range (book labels as `bible -f` prints them)
passages=(
  "01-ruth-1 Ruth1:1-Ruth1:22"
  "02-esther-1 Est1:1-Est1:22"
  "03-ecclesiastes-1 Eccl1:1-Eccl1:18"
  "04-ecclesiastes-3 Eccl3:1-Eccl3:22"
  "05-song-of-solomon-2 SSol2:1-SSol2:17"
  "06-lamentations-3 Lam3:1-Lam3:66"
  "07-jonah-1 Jonah1:1-Jonah1:17"
  "08-jonah-2 Jonah2:1-Jonah2:10"
  "09-philemon Phmn1:1-Phmn1:25"
  "10-james-1 Jas1:1-Jas1:27"
  "11-james-3 Jas3:1-Jas3:18"
  "12-1-john-1 1Jn1:1-1Jn1:10"
  "13-1-john-4 1Jn4:7-1Jn4:21"
)
for p in "${passages[@]}"; do
  name=${p% *}
  range=${p#* }
  bible -f "$range" | sed 's/^[^ ]* //' |
    awk '{ n += length($0) + 1; if (n > 960) exit; print }' > "$out/$name.txt.tmp"
  mv "$out/$name.txt.tmp" "$out/$name.txt"
  printf '%-24s %-22s %4d characters\n' "$name" "$range" "$(wc -c < "$out/$name.txt")"
done
