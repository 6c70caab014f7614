#!/usr/bin/env bash
# Runs a firmware ELF on an emulated board and decodes its defmt output.
# usage: qemu-run.sh MACHINE ELF   (the firmware's exit code becomes this script's)
set -euo pipefail
machine=$1
elf=$2
set +e
qemu-system-arm -machine "$machine" -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native -icount shift=7,align=off,sleep=off \
  -kernel "$elf" | defmt-print -e "$elf" stdin
status=${PIPESTATUS[0]}
exit "$status"
