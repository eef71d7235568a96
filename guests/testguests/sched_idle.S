# Idles in HLT between ticks of its local APIC timer (periodic, every 1 ms of guest time, vector
# 0x40), counting them in the 64-bit word at 0x9100, for ever: the wake-up latency guest of
# `trivisor bench sched`. Ring 0 runs a few instructions per tick. Flat 64-bit at 0x10000.
    .code64
    .text
    .globl _start
    .set IDT, 0xF000
_start:
    lidt idtr(%rip)
    # Gate 0x40 -> tick (64-bit interrupt gate, selector 0x08).
    mov $tick, %eax
    movw %ax, IDT + 0x40 * 16
    movw $0x08, IDT + 0x40 * 16 + 2
    movw $0x8E00, IDT + 0x40 * 16 + 4
    shr $16, %eax
    movw %ax, IDT + 0x40 * 16 + 6
    movq $0, IDT + 0x40 * 16 + 8
    mov $0xFEE00000, %rbx
    movl $0x1FF, 0xF0(%rbx)        # APIC on, spurious vector 0xFF
    movl $0x0B, 0x3E0(%rbx)        # divide by 1: 1 GHz
    movl $0x20040, 0x320(%rbx)     # periodic, vector 0x40
    movl $1000000, 0x380(%rbx)     # 1 ms
1:  sti
    hlt
    jmp 1b
tick:
    incq 0x9100
    movl $0, 0xB0(%rbx)            # EOI
    iretq
idtr:
    .word 0xFFF
    .quad IDT
