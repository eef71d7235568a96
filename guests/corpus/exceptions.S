# Exceptions through the IDT: #GP(selector) for a selector beyond the GDT limit, #NP and #SS for a
# not-present segment, #GP(0) for a non-canonical address, #UD, #DE, #BP (frame RIP after int3),
# int 0x80 through a DPL 3 gate from ring 3 and back, int 0x82 through a DPL 0 gate from ring 3
# (#GP with error code 0x82*8+2). Ends with debug exit 0x10 (status 0x21).
#include "common.S"
main:
    movabs $0x00cf12000000ffff, %rax    # 0x38: data, DPL 0, not present
    mov %rax, 0x7038
    lgdt gdtr(%rip)
    mov $0x80, %edi
    lea int80(%rip), %rsi
    mov $0xee00, %dx
    call set_gate
    mov $0x82, %edi
    lea int80(%rip), %rsi
    mov $0x8e00, %dx
    call set_gate

    PRINT "selector beyond GDT limit: "
    mov $0x48, %ax
    TRY mov %ax, %ds
    PRINT "not-present data segment: "
    mov $0x38, %ax
    TRY mov %ax, %es
    PRINT "not-present stack segment: "
    mov $0x38, %ax
    TRY mov %ax, %ss
    PRINT "non-canonical address: "
    movabs $0x8000000000000000, %rcx
    TRY mov (%rcx), %rax
    PRINT "ud2: "
    TRY ud2
    PRINT "divide by zero: "
    mov $7, %eax
    xor %edx, %edx
    xor %ecx, %ecx
    TRY div %ecx
    PRINT "ring 3 int 0x80 through a DPL 3 gate:"
    call newline
    movq $0, SCRATCH
    USER_CALL user_int80, 0x3002
    mov SCRATCH, %rax
    SHOW "ring 3 saw rax after int 0x80: ", %rax
    PRINT "ring 3 int 0x82 through a DPL 0 gate: "
    lea user_int82(%rip), %rax
    mov %rax, EXPECT_RIP
    USER_CALL user_int82, 0x3002
    PRINT "int3: "
    TRAP int3
    mov $0x10, %al
    out %al, $0xf4
1:  hlt
    jmp 1b

int80:
    mov %rax, %r14
    PRINT "int 0x80 handler: cpl "
    mov 8(%rsp), %rax
    and $3, %eax
    call puthex
    SHOW " rax ", %r14
    mov 24(%rsp), %rax          # ring-3 RSP
    SHOW "  saved rsp ", %rax
    mov $0x600d, %eax
    iretq

user_int80:
    mov $0x1234, %eax
    int $0x80
    mov %rax, SCRATCH
    USER_RET
user_int82:
    int $0x82
    USER_RET

    .balign 8
gdtr:
    .word 0x3f
    .quad 0x7000
