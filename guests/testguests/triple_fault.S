# Loads an empty IDT and executes UD2: #UD cannot be delivered (#GP), nor can #GP (#DF), nor #DF:
# the CPU shuts down (a triple fault). Flat 64-bit ring-0 binary linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    lidt empty_idt(%rip)
    ud2
    .balign 8
empty_idt:
    .word 0
    .quad 0
