#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the build into a temporary prefix and checks what the Linux desktop expects:
#   install_check.sh BUILD_DIR WITH_GUI(ON|OFF)
# the programs run from there on the installed bundled model; the .desktop entry, the AppStream
# metainfo and the man pages validate; every CLI command is in the man page.
set -euo pipefail
build=${1:?usage: install_check.sh BUILD_DIR WITH_GUI}
gui=${2:-ON}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install_check: $*" >&2; exit 1; }
for tool in desktop-file-validate appstreamcli groff; do
    command -v "$tool" >/dev/null || fail "$tool is missing (tools/kvs installs desktop-file-utils, appstream, groff-base)"
done

cmake --install "$build" --prefix "$prefix" >/dev/null
id=io.github.kvstudio.KVStudio
share=$prefix/share
expect=(
    "$prefix/bin/kvstudio-cli"
    "$share/kvstudio/models/default/config.json"
    "$share/kvstudio/models/default/model.safetensors"
    "$share/applications/$id.desktop"
    "$share/metainfo/$id.metainfo.xml"
    "$share/mime/packages/$id.xml"
    "$share/icons/hicolor/scalable/apps/$id.svg"
    "$share/icons/hicolor/48x48/apps/$id.png"
    "$share/icons/hicolor/256x256/apps/$id.png"
    "$share/man/man1/kvstudio-cli.1.gz"
    "$share/man/man1/kvstudio.1.gz"
    "$share/doc/kvstudio/copyright"
    "$share/doc/kvstudio/changelog.gz"
)
[ "$gui" = ON ] && expect+=("$prefix/bin/kvstudio")
for f in "${expect[@]}"; do [ -f "$f" ] || fail "not installed: ${f#"$prefix"/}"; done

# The installed CLI on the installed model, from a folder that is not the build tree.
cd "$prefix"
"$prefix/bin/kvstudio-cli" info "$share/kvstudio/models/default" --json | grep -q '"layers"' \
    || fail "kvstudio-cli info on the installed model printed no configuration"
out=$("$prefix/bin/kvstudio-cli" eval "$share/kvstudio/models/default" \
    --prompt "In the beginning God created the heaven and the earth." \
    --scheme select.snapkv:keep=0.5 --backend cpu --json)
echo "$out" | grep -q '"kl_mean"' || fail "installed eval printed no KL: $out"
if [ "$gui" = ON ]; then
    "$prefix/bin/kvstudio" --version | grep -q "0\." || fail "installed kvstudio --version failed"
fi

desktop-file-validate "$share/applications/$id.desktop" || fail "desktop-file-validate refused the entry"
exec_line=$(sed -n 's/^Exec=//p' "$share/applications/$id.desktop")
[ "${exec_line%% *}" = kvstudio ] || fail "the entry's Exec runs '${exec_line%% *}', not kvstudio"
appstreamcli validate --no-net "$share/metainfo/$id.metainfo.xml" \
    || fail "appstreamcli refused the metainfo"
for page in kvstudio kvstudio-cli; do
    warnings=$(zcat "$share/man/man1/$page.1.gz" | groff -man -Tutf8 -ww -z 2>&1)
    [ -z "$warnings" ] || fail "groff warns on $page.1: $warnings"
done
# Every command of the CLI has its entry in the man page.
commands=$("$prefix/bin/kvstudio-cli" --help | sed -n 's/^  kvstudio-cli \([a-z-]*\).*/\1/p')
[ -n "$commands" ] || fail "kvstudio-cli --help listed no command"
for c in $commands; do
    zcat "$share/man/man1/kvstudio-cli.1.gz" | grep -q "^\.B ${c//-/\\\\-}\b\|^\.B ${c}\b" \
        || fail "the man page has no entry for '$c'"
done
echo "install_check: installed and validated under a temporary prefix ($(find "$prefix" -type f | wc -l) files)"
