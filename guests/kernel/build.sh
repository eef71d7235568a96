#!/usr/bin/env bash
# Builds the Trivisor reference kernel with the Swift toolchain's own swiftc, clang and ld.lld.
#
#   guests/kernel/build.sh OUTPUT.elf [WORK_DIR]
#
# Also writes elf64-boot-shim.elf next to OUTPUT: a test-only Multiboot kernel that boots OUTPUT
# (given as a Multiboot module) through the ELF64 boot contract (Testing/elf64-boot-shim.S).
#
# Tools come from $TRIVISOR_TOOLCHAIN_BIN (the SwiftPM plugin sets it), else from the directory
# of the `swiftc` on PATH. Fails if the user object needs anything from the kernel, or if any SSE
# register appears in the image (ring 0 must never touch SSE state).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
output="${1:?usage: build.sh OUTPUT.elf [WORK_DIR]}"
work="${2:-$(dirname "$output")/kernel-build}"
# The first directory holding every tool: $TRIVISOR_TOOLCHAIN_BIN, the real location of the swiftc
# there (it may be a symlink farm), then that of the swiftc on PATH.
required_tools=(swiftc clang ld.lld llvm-objcopy llvm-nm llvm-objdump)
candidates=()
if [ -n "${TRIVISOR_TOOLCHAIN_BIN:-}" ]; then
  candidates+=("$TRIVISOR_TOOLCHAIN_BIN")
  [ -e "$TRIVISOR_TOOLCHAIN_BIN/swiftc" ] && candidates+=("$(dirname "$(readlink -f "$TRIVISOR_TOOLCHAIN_BIN/swiftc")")")
fi
if swiftc_path="$(command -v swiftc)"; then
  candidates+=("$(dirname "$swiftc_path")" "$(dirname "$(readlink -f "$swiftc_path")")")
fi
tools=""
for candidate in "${candidates[@]}"; do
  complete=yes
  for tool in "${required_tools[@]}"; do
    [ -x "$candidate/$tool" ] || complete=no
  done
  if [ "$complete" = yes ]; then
    tools="$candidate"
    break
  fi
done
if [ -z "$tools" ]; then
  echo "error: no Swift toolchain directory with ${required_tools[*]} (looked in: ${candidates[*]:-nothing}); set TRIVISOR_TOOLCHAIN_BIN" >&2
  exit 1
fi
mkdir -p "$work" "$(dirname "$output")"
echo "$tools" >"$work/toolchain-bin.txt"

swift_flags=(
  -target x86_64-unknown-none-elf
  -enable-experimental-feature Embedded -enable-experimental-feature Extern
  -wmo -parse-as-library -O -enforce-exclusivity=unchecked
  -Xfrontend -disable-stack-protector
  -Xcc -mno-red-zone -Xllvm -mattr=-sse,-sse2,-mmx
  # Swift takes its target features from the Clang importer: without these, -mattr alone still
  # lets the optimizer use XMM registers for zeroing and copies.
  -Xcc -mno-sse -Xcc -mno-sse2 -Xcc -mno-mmx
)
asm_flags=(-target x86_64-unknown-none-elf -c)

shopt -s nullglob
"$tools/swiftc" "${swift_flags[@]}" -module-name Kernel \
  "$here"/Kernel/*.swift "$here"/Kernel/Platform/*.swift "$here"/Kernel/Paravirt/*.swift "$here"/Kernel/SMP/*.swift "$here"/Shared/*.swift -c -o "$work/kernel.o"
"$tools/swiftc" "${swift_flags[@]}" -module-name UserPrograms \
  "$here"/User/*.swift "$here"/Shared/*.swift -c -o "$work/user-swift.o"
for source in boot traps cpu trampoline pv user; do
  "$tools/clang" "${asm_flags[@]}" "$here/Arch/$source.S" -o "$work/$source-asm.o"
done

# The ring-3 object: user Swift plus Arch/user.S, every symbol local except `user_start`, so the
# kernel's copies of runtime or library functions can never be picked for user code (they live in
# supervisor pages).
"$tools/ld.lld" -r "$work/user-swift.o" "$work/user-asm.o" -o "$work/user-combined.o"
"$tools/llvm-objcopy" --keep-global-symbol=user_start "$work/user-combined.o" "$work/user.o"
undefined="$("$tools/llvm-nm" -u "$work/user.o")"
if [ -n "$undefined" ]; then
  echo "error: ring-3 code needs symbols it cannot reach: $undefined" >&2
  exit 1
fi

"$tools/ld.lld" -static -nostdlib -z max-page-size=4096 -z norelro --no-pie \
  -T "$here/linker.ld" -o "$work/trivisor-kernel.elf" \
  "$work/boot-asm.o" "$work/traps-asm.o" "$work/cpu-asm.o" "$work/trampoline-asm.o" "$work/pv-asm.o" "$work/kernel.o" "$work/user.o"

"$tools/llvm-objdump" -d "$work/trivisor-kernel.elf" >"$work/trivisor-kernel.dis"
if grep -Eq '%(x|y|z)mm[0-9]|%mm[0-7]' "$work/trivisor-kernel.dis"; then
  echo "error: the kernel image uses SSE registers" >&2
  exit 1
fi
"$tools/clang" "${asm_flags[@]}" "$here/Testing/elf64-boot-shim.S" -o "$work/elf64-boot-shim.o"
"$tools/ld.lld" -static -nostdlib -z max-page-size=4096 -z norelro --no-pie \
  -T "$here/Testing/elf64-boot-shim.ld" -o "$work/elf64-boot-shim.elf" "$work/elf64-boot-shim.o"

cp "$work/elf64-boot-shim.elf" "$(dirname "$output")/elf64-boot-shim.elf"
cp "$work/trivisor-kernel.elf" "$output"
