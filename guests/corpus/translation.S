# What a binary translator must get right, checked on every engine: a loop of the common integer
# forms (flags carried between instructions and across loop iterations, 32-bit results
# zero-extended, memory operands, PUSH/POP/CALL/RET), flags carried from one block into the next,
# a store that rewrites the very next instruction (self-modifying code inside a running block),
# a function patched after it ran (its old translation must go), a fault in the middle of a block
# (precise RIP and the registers the instructions before it left), the same loop in ring 3,
# indirect CALL and JMP through registers and memory, runs of PUSH and POP (also across a page
# boundary), PUSH of memory and of RSP, CLD/STD, SWAPGS, atomic read-modify-writes and results the
# translator folds into constants.
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
    # Indirect CALL and JMP through a register and through memory, in a loop.
    xor %eax, %eax
    mov $50, %ecx
4:  lea add_three(%rip), %rdx
    call *%rdx
    call *call_table(%rip)
    lea 5f(%rip), %rdx
    jmp *%rdx
5:  lea jump_table(%rip), %rsi
    jmp *(%rsi)
indirect_next:
    dec %ecx
    jnz 4b
    SHOW "indirect branches: ", %rax

    # Runs of PUSH and POP (one stack check for the run), a PUSH of memory and of RSP.
    mov $0x1111, %eax
    mov $0x2222, %ebx
    mov $0x3333, %edx
    mov $0x4444, %esi
    push %rax
    push %rbx
    push $-0x55
    push %rdx
    push %rsi
    pop %rax
    pop %rbx
    pop %rdx
    pop %rsi
    pop %rdi
    call fold
    SHOW "stack run: ", %rax
    mov %rsp, %r15
    mov $0x71010, %rsp              # the run crosses into the page below
    mov $0x5555, %eax
    push %rax
    push %rbx
    push %rdx
    push %rsi
    pop %rax
    pop %rbx
    pop %rdx
    pop %rsi
    mov %r15, %rsp
    call fold
    SHOW "stack run across pages: ", %rax
    movq $0x6789, SCRATCH
    pushq SCRATCH
    push %rsp
    pop %rbx                        # RSP as it was after the first push
    pop %rax
    mov %rsp, %rcx
    sub %rbx, %rcx
    shl $16, %rax
    or %rcx, %rax
    SHOW "push memory, push rsp: ", %rax

    # CLD and STD.
    std
    pushf
    pop %rax
    cld
    pushf
    pop %rbx
    shr $10, %rax
    and $1, %eax
    shl $4, %eax
    shr $10, %rbx
    and $1, %ebx
    or %rbx, %rax
    SHOW "direction flag set, clear: ", %rax

    # SWAPGS exchanges the GS base and IA32_KERNEL_GS_BASE.
    movq $0xaa, SCRATCH + 0x200
    movq $0xbb, SCRATCH + 0x300
    xor %edx, %edx
    mov $0xc0000101, %ecx
    mov $SCRATCH + 0x200, %eax
    wrmsr
    mov $0xc0000102, %ecx
    mov $SCRATCH + 0x300, %eax
    wrmsr
    mov %gs:0, %rax
    swapgs
    mov %gs:0, %rbx
    swapgs
    mov %gs:0, %rcx
    shl $8, %rax
    or %rbx, %rax
    shl $8, %rax
    or %rcx, %rax
    SHOW "swapgs: ", %rax
    xor %eax, %eax
    mov $0xc0000101, %ecx
    wrmsr

    # Atomic read-modify-writes of memory.
    movq $100, SCRATCH + 0x80
    mov $5, %eax
    lock xadd %rax, SCRATCH + 0x80  # rax 100, memory 105
    mov %rax, %rbx
    mov $105, %eax
    mov $7, %ecx
    xor %edx, %edx
    xor %esi, %esi
    lock cmpxchg %rcx, SCRATCH + 0x80   # equal: memory 7, ZF set
    setz %dl
    lock cmpxchg %rcx, SCRATCH + 0x80   # 105 is not 7: rax 7, ZF clear
    setz %sil
    xchg %rbx, SCRATCH + 0x80       # rbx 7, memory 100
    lock addl $3, SCRATCH + 0x80    # 103
    lock incq SCRATCH + 0x80        # 104
    lock decw SCRATCH + 0x80        # 103
    stc
    lock adcq $0, SCRATCH + 0x80    # 104
    mov SCRATCH + 0x80, %rdi
    call fold
    SHOW "atomic updates: ", %rax

    # Results known at translation time whose flags nothing reads (constant folding).
    mov $0x1234, %eax
    add $0x11, %eax
    xor %ecx, %ecx
    sub $1, %rcx
    or $0xf0, %eax
    and $0xfff0, %eax
    lea 8(%rax,%rcx,4), %rdx
    xor $0x5a, %edx
    movabs $0x100000000, %rsi
    add %rsi, %rdx
    cmp $0, %eax
    xor %rdx, %rax
    xor %rcx, %rax
    SHOW "constants: ", %rax

    mov $0, %al
    out %al, $0xf4
3:  hlt
    jmp 3b

add_three:
    add $3, %rax
    ret

times_two:
    add %rax, %rax
    ret

# rax = rax ^ rbx << 8 ^ rdx << 16 ^ rsi << 24 ^ rdi << 32.
fold:
    mov %rbx, %r8
    shl $8, %r8
    xor %r8, %rax
    mov %rdx, %r8
    shl $16, %r8
    xor %r8, %rax
    mov %rsi, %r8
    shl $24, %r8
    xor %r8, %rax
    mov %rdi, %r8
    shl $32, %r8
    xor %r8, %rax
    ret

    .p2align 3
call_table:
    .quad times_two
jump_table:
    .quad indirect_next

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
