# Ring-3 wrapper of the compute benchmark: calls the kernel from compute.S (loaded at 0x11000)
# with rdi = iterations (set by the host), reports the 64-bit result on port 0x510 as two dwords
# (low, high) and ends through isa-debug-exit. Flat 64-bit code linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    mov $0x11000, %eax
    call *%rax
    mov $0x510, %edx
    out %eax, %dx
    shr $32, %rax
    out %eax, %dx
    mov $0xf4, %edx
    xor %eax, %eax
    out %al, %dx
1:  jmp 1b
