/* A Multiboot v1 guest (header address fields, no ELF) for `trivisor bench alu32`: 32-bit
 * protected mode as the loader leaves it (flat segments, paging off), an ALU loop of five
 * instructions per iteration (add, xor, rol, dec, jnz), then a write to QEMU's isa-debug-exit
 * port 0xF4, which trivisor also has, to end the VM. The iteration count is the word at file
 * offset 32 (`iterations`), which the host patches before booting. Linked at 0x100000. */
        .code32
        .text
        .globl _start
header:
        .long 0x1BADB002                /* magic */
        .long 0x00010000                /* flags: the address fields below are valid */
        .long -(0x1BADB002 + 0x00010000)
        .long header                    /* header_addr */
        .long header                    /* load_addr */
        .long end                       /* load_end_addr */
        .long end                       /* bss_end_addr */
        .long _start                    /* entry_addr */
iterations:
        .long 1000000                   /* patched by the host (offset 32) */
_start:
        mov iterations, %ecx
        mov $0x12345678, %eax
        mov $0x9E3779B9, %ebx
        .p2align 4
loop:
        add %ebx, %eax
        xor %eax, %ebx
        rol $7, %eax
        dec %ecx
        jnz loop
        mov $0xF4, %dx
        xor %eax, %eax
        out %eax, %dx
1:      hlt
        jmp 1b
        .p2align 2
end:
