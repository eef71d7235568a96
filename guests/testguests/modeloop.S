/* The guest of `trivisor bench cpu --peers`: a 512-byte boot sector, linked at 0x7C00, that runs
 * the same ALU loop of five instructions per iteration (add, xor, rol, dec, jnz) in one of three
 * CPU modes, then ends the machine. It is what a PC BIOS starts (real mode, CS:IP = 0:7C00): Bochs
 * and QEMU boot it from a floppy image, Trivisor's engines load it as a flat real-mode binary at
 * 0x7C00 (`LoadOptions.flatMode = .real`), so every tool runs the same bytes.
 *
 * The host patches two fields before booting: the iteration count (a 32-bit word at offset 4) and
 * the mode (the byte at offset 8):
 *   16: real mode, 16-bit code, 32-bit operands (the 0x66 prefix on every loop instruction);
 *   32: flat 32-bit protected mode, paging off, 32-bit operands;
 *   64: long mode (one 2 MiB identity page), 64-bit operands (REX.W on every loop instruction
 *       but jnz).
 * The loop's registers start at the same values in every mode. At the end it writes 0 to port
 * 0xF4 (isa-debug-exit: Trivisor and QEMU stop with status 1), then "Shutdown" to port 0x8900
 * (Bochs's shutdown port: Bochs quits), then halts with interrupts off. */
        .code16
        .text
        .globl _start
_start:
        jmp start16
        .org 4
iterations:
        .long 1000                      /* patched by the host (offset 4); at least 1 */
mode:
        .byte 16                        /* patched by the host (offset 8): 16, 32 or 64 */

/* 0 to isa-debug-exit, then Bochs's shutdown string; assembles the same in every mode. */
.macro END_MACHINE
        mov $0xF4, %dx
        xor %eax, %eax
        out %eax, %dx
        mov $0x8900, %dx
        .irpc c, Shutdown
        mov $'\c', %al
        out %al, %dx
        .endr
        cli
1:      hlt
        jmp 1b
.endm

start16:
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x7C00, %sp
        ljmp $0, $real                  /* CS = 0 whatever segment the BIOS used */
real:
        cmpb $16, mode
        jne protected
        mov iterations, %ecx
        mov $0x12345678, %eax
        mov $0x9E3779B9, %ebx
        .p2align 4
loop16:
        add %ebx, %eax
        xor %eax, %ebx
        rol $7, %eax
        dec %ecx
        jnz loop16
        END_MACHINE

protected:
        lgdt gdtr
        mov %cr0, %eax
        or $1, %eax
        mov %eax, %cr0
        ljmp $0x08, $flat32

        .code32
flat32:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x7C00, %esp
        cmpb $64, mode
        je paging
        mov iterations, %ecx
        mov $0x12345678, %eax
        mov $0x9E3779B9, %ebx
        .p2align 4
loop32:
        add %ebx, %eax
        xor %eax, %ebx
        rol $7, %eax
        dec %ecx
        jnz loop32
        END_MACHINE

/* Page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD: one 2 MiB page at 0). */
paging:
        mov $0x1000, %edi
        xor %eax, %eax
        mov $3072, %ecx
        rep stosl
        movl $0x2003, 0x1000
        movl $0x3003, 0x2000
        movl $0x83, 0x3000
        mov $0x1000, %eax
        mov %eax, %cr3
        mov %cr4, %eax
        or $0x20, %eax                  /* PAE */
        mov %eax, %cr4
        mov $0xC0000080, %ecx           /* EFER */
        rdmsr
        or $0x100, %eax                 /* LME */
        wrmsr
        mov %cr0, %eax
        or $0x80000000, %eax            /* PG */
        mov %eax, %cr0
        ljmp $0x18, $long64

        .code64
long64:
        mov iterations(%rip), %ecx      /* zero-extends into RCX */
        mov $0x12345678, %eax
        mov $0x9E3779B9, %ebx
        .p2align 4
loop64:
        add %rbx, %rax
        xor %rax, %rbx
        rol $7, %rax
        dec %rcx
        jnz loop64
        END_MACHINE

        .p2align 3
gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF        /* 0x08: 32-bit code, flat */
        .quad 0x00CF92000000FFFF        /* 0x10: data, flat */
        .quad 0x00AF9A000000FFFF        /* 0x18: 64-bit code */
gdtr:
        .word gdtr - gdt - 1
        .long gdt

        .org 510
        .byte 0x55, 0xAA
