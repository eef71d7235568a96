# Shared start-up and helpers of the engine-parity corpus guests (included by each NAME.S).
# Flat 64-bit ring-0 code linked at 0x10000 and started by SmallGuestBoot: long mode, identity
# 2 MiB pages of the first 4 GiB (user accessible), GDT 0x08/0x10 ring 0, 0x1b/0x23 ring 3,
# TSS at 0x7800 with RSP0 = 0x9f000. The guest defines main.
#
# Exceptions 0-31 go to stubs that print one line:
#   exc VEC [err ERR] [cr2 CR2] rip ok|rip RIP [cpl 3]
# ("rip ok": the frame RIP is the one the guest announced in EXPECT_RIP), then resume ring 0 at
# RESUME_RIP with RESUME_RSP. Without a resume point the guest stops: debug exit 0x7f.
# Ring 3 code returns to the resume point with USER_RET (a jump to user_exit, whose HLT raises a
# #GP(0) that the handler takes silently); vector 0x81 is also a DPL 3 gate that does the same.
    .code64
    .text
    .globl _start
    .set COM1, 0x3f8
    .set IDT, 0x8000
    .set VARS, 0x9000
    .set RESUME_RIP, VARS
    .set RESUME_RSP, VARS + 8
    .set EXPECT_RIP, VARS + 16
    .set LAST_FRAME, VARS + 24
    .set TICKS, VARS + 32
    .set USER_TICKS, VARS + 40
    .set FRAME, VARS + 0x40          # copy of the last frame: RIP, CS, RFLAGS, RSP, SS
    .set SCRATCH, VARS + 0x100
    .set USER_STACK, 0x80000

_start:
    call idt_init
    jmp main

# Prints the literal string s (no newline).
.macro PRINT s
    push %rsi
    lea .Ls\@(%rip), %rsi
    call puts
    pop %rsi
    jmp .Le\@
.Ls\@: .asciz "\s"
.Le\@:
.endm

# Prints the string s, then reg in hex, then a newline.
.macro SHOW s, reg
    PRINT "\s"
    push %rax
    mov \reg, %rax
    call puthex
    pop %rax
    call newline
.endm

# Runs one instruction that must fault (clobbers %r11); the handler expects the frame RIP at the instruction
# (after = 0) or after it (after = 1, traps like int3), and resumes after it.
.macro TRYX after, insn:vararg
    .if \after
    lea .La\@(%rip), %r11
    .else
    lea .Lf\@(%rip), %r11
    .endif
    mov %r11, EXPECT_RIP
    lea .Lr\@(%rip), %r11
    mov %r11, RESUME_RIP
    mov %rsp, RESUME_RSP
.Lf\@:
    \insn
.La\@:
    movq $0, RESUME_RIP
    PRINT "no fault"
    call newline
.Lr\@:
.endm
.macro TRY insn:vararg
    TRYX 0, \insn
.endm
.macro TRAP insn:vararg
    TRYX 1, \insn
.endm

# Enters ring 3 at entry with RFLAGS flags on USER_STACK; continues after the macro when the ring
# 3 code faults or executes int $0x81 (clobbers %r11).
.macro USER_CALL entry, flags
    lea .Lb\@(%rip), %r11
    mov %r11, RESUME_RIP
    mov %rsp, RESUME_RSP
    pushq $0x23
    pushq $USER_STACK
    pushq $\flags
    pushq $0x1b
    lea \entry(%rip), %r11
    push %r11
    iretq
.Lb\@:
.endm

# Ends ring 3 code started by USER_CALL.
.macro USER_RET
    jmp user_exit
.endm

# putc: %al to COM1.
putc:
    push %rdx
    mov $COM1, %dx
    out %al, %dx
    pop %rdx
    ret
newline:
    push %rax
    mov $10, %al
    call putc
    pop %rax
    ret
# puts: the NUL-terminated string at %rsi.
puts:
    push %rax
    push %rdx
    mov $COM1, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  pop %rdx
    pop %rax
    ret
# puthex: %rax in hex without leading zeros.
puthex:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %r8
    mov %rax, %rbx
    mov $64, %ecx
    xor %r8d, %r8d
    mov $COM1, %dx
1:  sub $4, %ecx
    mov %rbx, %rax
    shr %cl, %rax
    and $0xf, %eax
    test %ecx, %ecx
    jz 2f
    test %r8d, %r8d
    jnz 2f
    test %eax, %eax
    jz 3f
2:  mov $1, %r8d
    cmp $10, %al
    jb 4f
    add $('a' - '0' - 10), %al
4:  add $'0', %al
    out %al, %dx
3:  test %ecx, %ecx
    jnz 1b
    pop %r8
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    ret

poweroff:
    mov $0x604, %dx
    mov $0x2000, %ax
    out %ax, %dx
1:  hlt
    jmp 1b

# set_gate: vector %edi, handler %rsi, type/attributes %dx (0x8e00 DPL 0, 0xee00 DPL 3).
set_gate:
    shl $4, %edi
    add $IDT, %edi
    mov %si, (%rdi)
    movw $0x08, 2(%rdi)
    mov %dx, 4(%rdi)
    mov %rsi, %rax
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    movl $0, 12(%rdi)
    ret

idt_init:
    xor %ebx, %ebx
1:  mov %ebx, %edi
    mov %rbx, %rsi
    shl $4, %rsi
    lea stubs(%rip), %rax
    add %rax, %rsi
    mov $0x8e00, %dx
    call set_gate
    inc %ebx
    cmp $32, %ebx
    jb 1b
    mov $0x81, %edi
    lea user_return(%rip), %rsi
    mov $0xee00, %dx
    call set_gate
    lidt idtr(%rip)
    movq $0, RESUME_RIP
    ret

    .balign 8
idtr:
    .word 256 * 16 - 1
    .quad IDT

    .balign 16
stubs:
    .set vec, 0
    .rept 32
    .balign 16
    .if vec == 8 || vec == 10 || vec == 11 || vec == 12 || vec == 13 || vec == 14 || vec == 17 || vec == 21 || vec == 29 || vec == 30
    .else
    pushq $-1
    .endif
    pushq $vec
    jmp exc_common
    .set vec, vec + 1
    .endr

exc_common:
    mov (%rsp), %rbx
    mov 8(%rsp), %r12
    lea 16(%rsp), %r13
    call save_frame
    cmp $13, %rbx
    jne 0f
    lea user_exit(%rip), %rax
    cmp %rax, (%r13)
    je resume
0:
    PRINT "exc "
    mov %rbx, %rax
    call puthex
    cmp $-1, %r12
    je 1f
    PRINT " err "
    mov %r12, %rax
    call puthex
1:  cmp $14, %rbx
    jne 2f
    PRINT " cr2 "
    mov %cr2, %rax
    call puthex
2:  mov (%r13), %rax
    cmp EXPECT_RIP, %rax
    jne 3f
    PRINT " rip ok"
    jmp 4f
3:  PRINT " rip "
    call puthex
4:  testb $3, 8(%r13)
    jz 5f
    PRINT " cpl 3"
5:  call newline
    jmp resume

user_exit:
    hlt

# save_frame: records the frame at %r13 (LAST_FRAME its address, FRAME a copy).
save_frame:
    mov %r13, LAST_FRAME
    push %rsi
    push %rdi
    push %rcx
    mov %r13, %rsi
    mov $FRAME, %edi
    mov $5, %ecx
    rep movsq
    pop %rcx
    pop %rdi
    pop %rsi
    ret

# int $0x81 from ring 3: back to the resume point.
user_return:
    mov %rsp, %r13
    call save_frame
# resume: the interrupt frame at %r13 is rewritten to continue at RESUME_RIP in ring 0.
resume:
    mov RESUME_RIP, %rax
    test %rax, %rax
    jz 1f
    movq $0, RESUME_RIP
    mov %rax, (%r13)
    movq $0x08, 8(%r13)
    movq $0x2, 16(%r13)
    mov RESUME_RSP, %rax
    mov %rax, 24(%r13)
    movq $0x10, 32(%r13)
    mov %r13, %rsp
    iretq
1:  PRINT "unexpected exception: stopping"
    call newline
    mov $0x7f, %al
    out %al, $0xf4
2:  hlt
    jmp 2b
