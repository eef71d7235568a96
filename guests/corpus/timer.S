#include "../include/pc.inc"
# Timer interrupts: PIC (vectors 0x20-0x2f, only IRQ 0 unmasked) and PIT channel 0 at about 10 kHz.
# Ring 0 waits for 5 ticks with HLT; then a ring-3 busy loop (IF=1) spins until tick 10, the
# ticks preempting it in ring 3.
#include "common.S"
main:
    mov $0x20, %edi
    lea timer(%rip), %rsi
    mov $0x8e00, %dx
    call set_gate
    mov $0x27, %edi
    lea spurious(%rip), %rsi
    mov $0x8e00, %dx
    call set_gate
    mov $0x2f, %edi
    lea spurious(%rip), %rsi
    mov $0x8e00, %dx
    call set_gate
    PIC_INIT_UNMASK_IRQ0
    mov $0x34, %al              # PIT channel 0: lobyte/hibyte, mode 2, divisor 119
    out %al, $0x43
    mov $119, %ax
    out %al, $0x40
    mov %ah, %al
    out %al, $0x40
    movl $0, TICKS
    movl $0, USER_TICKS
    sti
1:  hlt
    cmpl $5, TICKS
    jb 1b
    cli
    PRINT "ring 0: 5 ticks counted with hlt"
    call newline
    USER_CALL user_spin, 0x202
    PRINT "ring 3 busy loop ran until tick 10; preempted in ring 3 at least 3 times: "
    cmpl $3, USER_TICKS
    jb 2f
    PRINT "yes"
    jmp 3f
2:  PRINT "no"
3:  call newline
    jmp poweroff

user_spin:
    cmpl $10, TICKS
    jb user_spin
    USER_RET

timer:
    push %rax
    incl TICKS
    testb $3, 16(%rsp)
    jz 1f
    incl USER_TICKS
1:  mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq
spurious:
    iretq
