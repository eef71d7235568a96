# Spins in ring 0 without exits (`jmp .`), so only a kick can bring the vCPU back to the VMM.
# Flat 64-bit ring-0 binary linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
1:  jmp 1b
