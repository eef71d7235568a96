# Port-I/O exit round-trip benchmark guest (64-bit, ring 3 with IOPL 3 or ring 0).
# In:  rcx = number of OUT exits to take.  Writes port 0x80 rcx times, then port 0xF4 (exit).
    .code64
    .text
    .globl _start
_start:
    mov $0x80, %edx
    xor %eax, %eax
1:  out %al, %dx
    dec %rcx
    jnz 1b
    mov $0xf4, %edx
    out %al, %dx
2:  jmp 2b
