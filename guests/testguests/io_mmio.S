# Exercises every exit the VMM handles for a port or MMIO access, with values the test checks.
# Flat 64-bit ring-0 binary linked at 0x10000 (started by SmallGuestBoot).
    .code64
    .text
    .globl _start
_start:
    mov $0x510, %dx
    mov $0xab, %al
    out %al, %dx                # io-out 0x510/1 = 0xab
    mov $0x1234, %ax
    out %ax, %dx                # io-out 0x510/2 = 0x1234
    mov $0xdeadbeef, %eax
    out %eax, %dx               # io-out 0x510/4 = 0xdeadbeef
    mov $0x511, %dx
    in %dx, %eax                # io-in 0x511/4 (host answers)
    mov $0x512, %dx
    out %eax, %dx               # io-out 0x512/4 = the answer
    movabs $0xd0000000, %rbx
    movl $0x12345678, (%rbx)    # mmio-write 0xd0000000/4
    mov 8(%rbx), %rax           # mmio-read 0xd0000008/8 (host answers)
    mov %rax, 16(%rbx)          # mmio-write 0xd0000010/8 = the answer
    lea msg(%rip), %rsi
    mov $4, %ecx
    mov $0x513, %dx
    rep outsb                   # 4 x io-out 0x513/1 = "Triv"
    lea buffer(%rip), %rdi
    mov $2, %ecx
    mov $0x514, %dx
    rep insw                    # 2 x io-in 0x514/2 (host answers)
    mov buffer(%rip), %eax
    mov $0x515, %dx
    out %eax, %dx               # io-out 0x515/4 = both answers
    hlt                         # hlt
    mov $0xf4, %dx
    mov $0x2a, %al
    out %al, %dx                # debug exit 0x2a
1:  jmp 1b
msg:
    .ascii "Triv"
    .balign 8
buffer:
    .quad 0
