# The ring-3 compute benchmark kernel: a System V function `uint64_t f(uint64_t n)` that runs an
# xorshift64 loop n times and returns the state. The same bytes run natively on the host (called
# as a function) and in the guest (called by compute_guest.S), so the ratio compares like with like.
    .code64
    .text
    .globl _start
_start:
    movabs $0x9e3779b97f4a7c15, %rax
    test %rdi, %rdi
    jz 2f
1:  mov %rax, %rdx
    shl $13, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shr $7, %rdx
    xor %rdx, %rax
    mov %rax, %rdx
    shl $17, %rdx
    xor %rdx, %rax
    dec %rdi
    jnz 1b
2:  ret
