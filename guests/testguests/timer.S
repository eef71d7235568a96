#include "../include/pc.inc"
# Programs the PIC (vectors 0x20-0x2f, only IRQ 0 unmasked) and PIT channel 0 (mode 2, with the
# 16-bit divisor the host put at 0x9000), enables interrupts and HLTs until its timer handler has
# counted the number of interrupts the host put at 0x9004 (32 bits); writes the count to port
# 0x510 and powers off through port 0x604 (status 0). Flat 64-bit ring 0 at 0x10000.
    .code64
    .text
    .globl _start
    .set IDT, 0x8000
    .set DIVISOR, 0x9000
    .set TICKS, 0x9004
_start:
    # IDT gates 0x20..0x2f: 0x20 -> timer, the rest -> spurious (EOI and return).
    IDT_TIMER_GATES IDT
    # PIC: ICW1-4 for both, master at 0x20, slave at 0x28, mask all but IRQ 0.
    PIC_INIT_UNMASK_IRQ0
    # PIT channel 0: lobyte/hibyte, mode 2, the host's divisor.
    mov $0x34, %al
    out %al, $0x43
    mov DIVISOR, %ax
    out %al, $0x40
    mov %ah, %al
    out %al, $0x40
    mov TICKS, %ebx
    sti
3:  hlt
    cmp %ebx, ticks(%rip)
    jb 3b
    cli
    mov ticks(%rip), %eax
    mov $0x510, %dx
    out %eax, %dx
    mov $0x604, %dx
    mov $0x2000, %ax
    out %ax, %dx
4:  jmp 4b

timer:
    push %rax
    incl ticks(%rip)
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq
spurious:
    push %rax
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq

    .balign 8
idtr:
    .word 0x30 * 16 - 1
    .quad IDT
ticks:
    .long 0
