#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Screenshots of every studio view under a real X server (xvfb):
#   tools/studio_screenshots.sh KVSTUDIO OUT_DIR [MODEL_FOLDER]
# Writes OUT_DIR/{overview,attention,tradeoffs,cache,profile,attention-dark}.png and fails when
# any run fails (the window waits for its workers before it grabs itself).
set -euo pipefail
studio=${1:?usage: studio_screenshots.sh KVSTUDIO OUT_DIR [MODEL_FOLDER]}
out=${2:?usage: studio_screenshots.sh KVSTUDIO OUT_DIR [MODEL_FOLDER]}
model=${3:-}
mkdir -p "$out"
if ! command -v xvfb-run >/dev/null; then
    echo "studio_screenshots: xvfb-run not found (apt-get install xvfb)" >&2
    exit 77
fi
shoot() { # NAME VIEW THEME
    # shellcheck disable=SC2086
    xvfb-run -a -s "-screen 0 1600x1000x24" "$studio" $model --view "$2" --theme "$3" \
        --timeout 240 --screenshot "$out/$1.png"
}
for view in overview attention tradeoffs cache profile; do
    shoot "$view" "$view" light
done
shoot attention-dark attention dark
echo "studio_screenshots: wrote $(ls "$out"/*.png | wc -l) screenshots to $out"
