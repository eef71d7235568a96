// The application processors' start-up code (Kernel/SMP/APStartup.swift).
//
// A start-up IPI with vector 0x08 starts an AP in real mode at 0800:0000, physical 0x8000. The
// kernel copies [ap_trampoline_start, ap_trampoline_end) there and fills in the parameter block at
// its end before each AP's INIT-SIPI-SIPI. The code goes 16-bit real mode -> 32-bit protected mode
// (its own flat GDT) -> long mode (PAE, the kernel's page tables, EFER.LME, paging) -> 64-bit code,
// loads the AP's stack and calls the 64-bit entry with the AP's per-CPU page in RDI.
//
// Addresses inside the copy are TRAMPOLINE(label): 0x8000 plus the label's offset from the start.
// The GDT's selectors match the kernel's (0x08 64-bit code, 0x10 data), so loading the kernel GDT
// later needs no far jump.

#define TRAMPOLINE_BASE 0x8000
#define TRAMPOLINE(label) (TRAMPOLINE_BASE + (label) - ap_trampoline_start)

        .section .rodata
        .balign 16
        .globl ap_trampoline_start
ap_trampoline_start:
        .code16
        cli
        cld
        xorw %ax, %ax
        movw %ax, %ds
        movw $1, TRAMPOLINE(ap_trampoline_params) + 32      // "started": no second SIPI needed
        lgdtl TRAMPOLINE(trampoline_gdtr)
        movl %cr0, %eax
        andl $0x9FFFFFFF, %eax      // caches on (INIT leaves CD and NW set)
        orl $1, %eax                // PE
        movl %eax, %cr0
        ljmpl $0x18, $TRAMPOLINE(trampoline_protected)

        .code32
trampoline_protected:
        movw $0x10, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movl %cr4, %eax
        orl $0x20, %eax             // PAE
        movl %eax, %cr4
        movl TRAMPOLINE(ap_trampoline_params), %eax     // CR3 (below 4 GiB)
        movl %eax, %cr3
        movl $0xC0000080, %ecx      // EFER
        rdmsr
        orl $0x100, %eax            // LME
        wrmsr
        movl %cr0, %eax
        orl $0x80000000, %eax       // PG
        movl %eax, %cr0
        ljmpl $0x08, $TRAMPOLINE(trampoline_long)

        .code64
trampoline_long:
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movq TRAMPOLINE(ap_trampoline_params) + 8, %rsp
        movq TRAMPOLINE(ap_trampoline_params) + 16, %rdi
        movq TRAMPOLINE(ap_trampoline_params) + 24, %rax
        jmp *%rax                   // ap_entry64, never returns
1:      cli
        hlt
        jmp 1b

        .balign 8
trampoline_gdt:
        .quad 0
        .quad 0x00AF9A000000FFFF    // 0x08 64-bit code
        .quad 0x00CF92000000FFFF    // 0x10 data
        .quad 0x00CF9A000000FFFF    // 0x18 32-bit code
trampoline_gdtr:
        .word 31
        .long TRAMPOLINE(trampoline_gdt)
        .balign 8
        .globl ap_trampoline_params
ap_trampoline_params:               // filled in by APStartup for each AP
        .quad 0                     // +0 CR3
        .quad 0                     // +8 stack top
        .quad 0                     // +16 per-CPU page
        .quad 0                     // +24 64-bit entry (ap_entry64)
        .quad 0                     // +32 set to 1 by the AP's first instructions
        .globl ap_trampoline_end
ap_trampoline_end:

// The AP's 64-bit entry: RDI = per-CPU page, RSP = its scheduler stack.
        .text
        .globl ap_entry64
ap_entry64:
        call ap_main
2:      cli
        hlt
        jmp 2b
