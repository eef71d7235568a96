# Ring-3 wrapper of the compute benchmark: calls the kernel from compute.S (loaded at 0x11000)
# with rdi = iterations (set by the host), writes the 64-bit result to MMIO 0xd0000000 and ends by
# writing MMIO 0xd0000010 (the benchmark's device forwards that to isa-debug-exit). MMIO works
# from ring 3 without IOPL, which this host's ring-3 execution does not reliably keep over long
# runs. Flat 64-bit code linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    mov $0x11000, %eax
    call *%rax
    mov $0xd0000000, %ebx
    mov %rax, (%rbx)
    movq $0, 16(%rbx)
1:  jmp 1b
