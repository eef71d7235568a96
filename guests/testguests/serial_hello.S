# Prints a line on COM1 (polling LSR.THRE like a real driver), then ends through isa-debug-exit
# with value 0x10 (status 0x21). Flat 64-bit ring-0 binary linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    lea msg(%rip), %rsi
1:  lodsb
    test %al, %al
    jz 3f
    mov %al, %bl
    mov $0x3fd, %dx
2:  in %dx, %al
    test $0x20, %al
    jz 2b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp 1b
3:  mov $0xf4, %dx
    mov $0x10, %al
    out %al, %dx
4:  jmp 4b
msg:
    .asciz "hello from the test guest\n"
