# What a binary translator must get right, checked on every engine: a loop of the common integer
# forms (flags carried between instructions and across loop iterations, 32-bit results
# zero-extended, memory operands, PUSH/POP/CALL/RET), flags carried from one block into the next,
# a store that rewrites the very next instruction (self-modifying code inside a running block),
# a function patched after it ran (its old translation must go), a fault in the middle of a block
# (precise RIP and the registers the instructions before it left), and the same loop in ring 3.
#include "common.S"
main:
    call checksum
    SHOW "loop checksum: ", %rax
    SHOW "carries: ", %rbx

    PRINT "carry across blocks: "
    stc
    jmp 1f
1:  setc %al
    movzbl %al, %eax
    call puthex
    call newline

    movl $5, 2f+1(%rip)             # the immediate of the next instruction
2:  mov $1, %eax
    SHOW "patched next instruction: ", %rax

    call seven
    mov %rax, %rbx
    movl $9, seven+1(%rip)
    call seven
    SHOW "before the patch: ", %rbx
    SHOW "after the patch: ", %rax

    PRINT "fault mid-block: "
    mov $0x1111, %r14               # (the exception stubs keep r14)
    add $0x22, %r14
    movabs $0x8000000000000000, %rcx
    TRY mov (%rcx), %rax
    SHOW "r14 at the fault: ", %r14

    PRINT "ring 3 loop: "
    USER_CALL user_loop, 0x3002
    mov SCRATCH, %rax
    call puthex
    call newline
    mov $0, %al
    out %al, $0xf4
3:  hlt
    jmp 3b

seven:
    mov $7, %eax
    ret

# rax = a checksum of 200 iterations of integer forms; rbx = carries seen.
checksum:
    push %rbp
    xor %eax, %eax
    xor %ebx, %ebx
    mov $200, %ecx
    mov $0x12345678, %edx
    lea SCRATCH+0x40, %rbp
1:  lea (%rax,%rcx,8), %rsi
    xor %rsi, %rdx
    rol $7, %rdx
    add %rdx, %rax
    adc $0, %rbx
    imul $33, %rax, %rax
    sub %ecx, %eax
    mov %rax, (%rbp,%rcx,8)
    add (%rbp,%rcx,8), %rdx
    shr %cl, %rdx
    cmp $100, %ecx
    cmovb %rdx, %rax
    push %rax
    pop %rdi
    movsbq %dil, %rdi
    add %rdi, %rax
    dec %ecx
    jnz 1b
    pop %rbp
    ret

user_loop:
    mov $1000, %ecx
    xor %eax, %eax
1:  add %rcx, %rax
    rol $3, %rax
    xor $0x55, %al
    dec %ecx
    jnz 1b
    mov %rax, SCRATCH
    USER_RET
