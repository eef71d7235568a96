// Ring-3 helpers, linked into the user-text pages (the only kernel-image pages user mode can
// execute). `user_start` is where every task begins: RDI = program, RSI = argument.

        .text
        .macro FUNC name
        .globl \name
        .type \name, @function
\name:
        .endm

FUNC user_start
        andq $-16, %rsp
        call user_main
        movq %rax, %rdi
        movl $1, %eax               // exit(status)
        syscall
        ud2

// user_syscall(number, a, b, c) -> result
FUNC user_syscall
        movq %rdi, %rax
        movq %rsi, %rdi
        movq %rdx, %rsi
        movq %rcx, %rdx
        syscall
        ret

// user_load64(address): one 64-bit load the compiler cannot merge or hoist (the clock page).
FUNC user_load64
        movq (%rdi), %rax
        ret

FUNC user_rdtsc
        rdtsc
        shlq $32, %rdx
        orq %rdx, %rax
        ret

// user_divide_by_zero_loop(count): registers a #DE resume address, then divides by zero `count`
// times; the kernel resumes each fault after the DIV. Returns 0. Without a registered resume
// address (count < 0 selects that) the first fault kills the task.
FUNC user_divide_by_zero_loop
        pushq %rbx
        movq %rdi, %rbx
        testq %rbx, %rbx
        js 3f
        movl $8, %eax               // set_trap_handler(vector 0, resume)
        xorl %edi, %edi
        leaq 2f(%rip), %rsi
        syscall
1:      testq %rbx, %rbx
        jz 4f
        movl $1, %eax
        xorl %edx, %edx
        xorl %ecx, %ecx
        divl %ecx
2:      decq %rbx
        jmp 1b
3:      movl $1, %eax
        xorl %edx, %edx
        xorl %ecx, %ecx
        divl %ecx
4:      xorl %eax, %eax
        popq %rbx
        ret

// user_forged_syscall_entry(entry): jumps straight to the kernel's SYSCALL entry (RDI) with getpid
// in RAX, RCX = the label below and R11 = flags asking for IOPL 3, as if SYSCALL had run at CPL 3.
// The kernel may complete the call but must not grant port I/O: the IN must raise #GP.
FUNC user_forged_syscall_entry
        movl $3, %eax
        leaq 1f(%rip), %rcx
        movq $0x3202, %r11
        jmp *%rdi
1:      inb $0x80, %al
        movl $1, %eax
        ret

// A privileged instruction in ring 3 (#GP).
FUNC user_privileged_instruction
        cli
        hlt
        ret

// The user side's own memset/memcpy (user code never calls into the kernel image).
#include "string.inc"
// The embedded Swift runtime references an allocator; user programs must not allocate.
FUNC posix_memalign
        movl $12, %eax              // ENOMEM
        ret
FUNC free
        ret
