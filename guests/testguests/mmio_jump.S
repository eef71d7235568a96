# Jumps into the MMIO hole: KVM cannot fetch instructions from memory that is not RAM, so it stops
# with an internal error (emulation failure). Flat 64-bit ring-0 binary linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    movabs $0xd0000000, %rax
    jmp *%rax
