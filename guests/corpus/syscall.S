# SYSCALL/SYSRET round trip: STAR (kernel CS 0x08, user base 0x30: SYSRET CS 0x43, SS 0x3b), LSTAR,
# SFMASK 0x244 (IF, ZF, PF). Ring 3 (RFLAGS 0x246) calls with rax 0x5a5a, rdi 0x21; the entry
# prints CS, SS, RCX (the return address), R11 (the caller RFLAGS), its own RFLAGS, and returns
# 2*rdi+1 with SYSRETQ; ring 3 records what it got back, the kernel prints it.
#include "common.S"
main:
    movabs $0x00cff2000000ffff, %rax    # 0x38: data, DPL 3
    mov %rax, 0x7038
    movabs $0x00affa000000ffff, %rax    # 0x40: code64, DPL 3
    mov %rax, 0x7040
    lgdt gdtr(%rip)
    mov $0xc0000080, %ecx       # EFER.SCE
    rdmsr
    or $1, %eax
    wrmsr
    mov $0xc0000081, %ecx       # STAR
    xor %eax, %eax
    mov $0x00300008, %edx
    wrmsr
    mov $0xc0000082, %ecx       # LSTAR
    lea syscall_entry(%rip), %rax
    mov %rax, %rdx
    shr $32, %rdx
    wrmsr
    mov $0xc0000084, %ecx       # SFMASK
    mov $0x244, %eax
    xor %edx, %edx
    wrmsr
    PRINT "syscall from ring 3 with rax 5a5a, rdi 21, rflags 246"
    call newline
    movq $0, SCRATCH + 32
    USER_CALL user_main, 0x246
    mov SCRATCH + 32, %rax
    SHOW "the entry read cs ", %rax
    mov SCRATCH, %rax
    SHOW "back in ring 3: rax ", %rax
    mov SCRATCH + 8, %rax
    SHOW "  rflags ", %rax
    mov SCRATCH + 16, %rax
    SHOW "  cs ", %rax
    mov SCRATCH + 24, %rax
    SHOW "  ss ", %rax
    jmp poweroff

user_main:
    mov $0x21, %edi
    mov $0x5a5a, %eax
    syscall
after_syscall:
    mov %rax, SCRATCH
    pushf
    pop %rax
    mov %rax, SCRATCH + 8
    mov %cs, %eax
    mov %rax, SCRATCH + 16
    mov %ss, %eax
    mov %rax, SCRATCH + 24
    USER_RET

syscall_entry:
    mov %rsp, %r15
    mov $0x9e000, %esp
    pushf
    pop %r13
    mov %rax, %r14
    mov %cs, %eax
    mov %rax, SCRATCH + 32
    PRINT "entry: cs "
    mov %cs, %eax
    call puthex
    PRINT " ss "
    mov %ss, %eax
    call puthex
    PRINT " rcx "
    lea after_syscall(%rip), %rax
    cmp %rax, %rcx
    jne 1f
    PRINT "ok"
    jmp 2f
1:  mov %rcx, %rax
    call puthex
2:  SHOW " r11 ", %r11
    PRINT "  rflags "
    mov %r13, %rax
    call puthex
    SHOW " rax ", %r14
    lea 1(%rdi, %rdi), %rax
    mov %r15, %rsp
    sysretq

    .balign 8
gdtr:
    .word 0x47
    .quad 0x7000
