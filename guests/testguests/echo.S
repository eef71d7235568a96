# Reads three bytes from COM1 (polling LSR.DR), writes each back in upper case, then ends through
# isa-debug-exit with value 1 (status 3). Flat 64-bit ring-0 binary linked at 0x10000.
    .code64
    .text
    .globl _start
_start:
    mov $3, %ecx
1:  mov $0x3fd, %dx
2:  in %dx, %al
    test $0x01, %al
    jz 2b
    mov $0x3f8, %dx
    in %dx, %al
    sub $0x20, %al
    out %al, %dx
    dec %ecx
    jnz 1b
    mov $0xf4, %dx
    mov $1, %al
    out %al, %dx
3:  jmp 3b
