# Privilege: ring 3 with IOPL 0 executing CLI, HLT, IN, OUT and MOV from CR3 gets #GP(0); the
# fault switches to RSP0 from the TSS (the frame ends at RSP0, holds the ring-3 RSP and SS); a new
# RSP0 is used by the next fault; with IOPL 3 ring 3 may use OUT.
#include "common.S"
.macro USER_FAULT label, at
    lea \at(%rip), %rax
    mov %rax, EXPECT_RIP
    USER_CALL \label, 0x2
.endm
main:
    PRINT "cli: "
    USER_FAULT user_cli, user_cli
    call show_frame
    PRINT "hlt: "
    USER_FAULT user_hlt, user_hlt
    PRINT "in: "
    USER_FAULT user_in, user_in_insn
    PRINT "out: "
    USER_FAULT user_out, user_out_insn
    PRINT "mov cr3: "
    USER_FAULT user_cr3, user_cr3
    movq $0x9e000, 0x7804       # TSS.RSP0
    PRINT "cli with RSP0 = 9e000: "
    USER_FAULT user_cli, user_cli
    call show_frame
    PRINT "IOPL 3 out: "
    USER_CALL user_print, 0x3002
    call newline
    mov SCRATCH, %rax
    SHOW "  ring 3 rflags ", %rax
    jmp poweroff

show_frame:
    mov LAST_FRAME, %rax
    add $40, %rax
    SHOW "  frame ends at ", %rax
    mov $FRAME, %ebx
    mov 24(%rbx), %rax
    SHOW "  saved rsp ", %rax
    mov 32(%rbx), %rax
    SHOW "  saved ss ", %rax
    mov 8(%rbx), %rax
    SHOW "  saved cs ", %rax
    ret

user_cli:
    cli
    USER_RET
user_hlt:
    hlt
    USER_RET
user_in:
    mov $0x3f8, %dx
user_in_insn:
    in %dx, %al
    USER_RET
user_out:
    mov $0x3f8, %dx
user_out_insn:
    out %al, %dx
    USER_RET
user_cr3:
    mov %cr3, %rax
    USER_RET
user_print:
    pushf
    pop %rax
    mov %rax, SCRATCH
    mov $0x3f8, %dx
    mov $'3', %al
    out %al, %dx
    USER_RET
