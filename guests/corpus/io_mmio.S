# I/O and MMIO exits: IN from an unclaimed port (all ones), a latch at port 0x510 (values round
# trip at each size), REP OUTSB/INSB through a byte stack at 0x518 (reads back reversed), and a
# register file at MMIO 0xd0000000 (mapped by the identity page tables): write/read, ADD to MMIO
# (read-modify-write), byte access, MOVSQ RAM->MMIO and MMIO->RAM, a host-set ID register.
#include "common.S"
    .set MMIO, 0xd0000000
main:
    mov $0x700, %dx
    xor %eax, %eax
    in %dx, %al
    SHOW "unclaimed port, byte: ", %rax
    in %dx, %ax
    SHOW "unclaimed port, word: ", %rax
    in %dx, %eax
    SHOW "unclaimed port, dword: ", %rax
    out %al, %dx

    mov $0x510, %dx
    mov $0xdeadbeef, %eax
    out %eax, %dx
    xor %eax, %eax
    in %dx, %eax
    SHOW "latch dword: ", %rax
    mov $0x5a, %al
    out %al, %dx
    mov $-1, %eax
    in %dx, %eax
    SHOW "latch after byte write: ", %rax
    mov $0x1234, %ax
    out %ax, %dx
    xor %eax, %eax
    in %dx, %ax
    SHOW "latch word: ", %rax

    lea text(%rip), %rsi
    mov $6, %ecx
    mov $0x518, %dx
    rep outsb
    mov $SCRATCH, %edi
    mov $6, %ecx
    rep insb
    movb $0, (%rdi)
    PRINT "rep outsb corpus, rep insb: "
    mov $SCRATCH, %esi
    call puts
    call newline

    mov $MMIO, %ebx
    movl $0x12345678, (%rbx)
    mov (%rbx), %eax
    SHOW "mmio dword: ", %rax
    addl $5, (%rbx)
    mov (%rbx), %eax
    SHOW "after add 5: ", %rax
    movb $0xee, 4(%rbx)
    movzbl 4(%rbx), %eax
    SHOW "mmio byte: ", %rax
    movabs $0x1122334455667788, %rax
    mov %rax, SCRATCH + 0x40
    mov $SCRATCH + 0x40, %esi
    lea 8(%rbx), %rdi
    movsq
    mov 8(%rbx), %rax
    SHOW "movsq ram to mmio: ", %rax
    movabs $0xcafef00d0badc0de, %rax
    mov %rax, 16(%rbx)
    lea 16(%rbx), %rsi
    mov $SCRATCH + 0x48, %edi
    movsq
    mov SCRATCH + 0x48, %rax
    SHOW "movsq mmio to ram: ", %rax
    mov 0xff8(%rbx), %rax
    SHOW "id register: ", %rax
    jmp poweroff
text:
    .ascii "corpus"
