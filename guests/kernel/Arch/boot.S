// Boot paths of the Trivisor reference kernel.
//
// 1. ELF64 (Trivisor's loader): entered at `kernel_entry64` (e_entry) in 64-bit long mode with
//    identity-mapped page tables, interrupts off, and RSI = physical address of a NUL-terminated
//    command line (0 = none).
// 2. Multiboot v1 (`qemu-system-x86_64 -kernel`): the a.out-kludge header below gives the load
//    addresses, so the 32-bit loader never parses this ELF64 file. `entry32` switches to long mode
//    with the static tables below and joins the 64-bit path.
//
// Both paths then load the kernel's own stack, page tables and GDT, zero .bss and call kmain.

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00010000  /* bit 16: load addresses are in the header (a.out kludge) */
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002

        .section .multiboot, "a"
        .balign 4
multiboot_header:
        .long MULTIBOOT_MAGIC
        .long MULTIBOOT_FLAGS
        .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)
        .long multiboot_header      // header_addr
        .long __image_start         // load_addr
        .long __data_end            // load_end_addr
        .long __bss_end             // bss_end_addr
        .long entry32               // entry_addr

        .section .boot.text, "ax"
        .code32
        .globl entry32
entry32:
        cli
        xorl %esi, %esi
        cmpl $MULTIBOOT_BOOTLOADER_MAGIC, %eax
        jne 1f
        testl $4, (%ebx)            // mbi.flags bit 2: cmdline valid
        jz 1f
        movl 16(%ebx), %esi         // mbi.cmdline
1:
        movl %cr4, %eax
        orl $0x20, %eax             // PAE
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx      // EFER
        rdmsr
        orl $0x100, %eax            // LME
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax       // PG | PE
        movl %eax, %cr0
        lgdt boot_gdtr
        ljmp $0x08, $entry64_from32

        .code64
entry64_from32:
        movl %esi, %r12d            // zero-extends: the command line pointer (or 0)
        jmp kernel_common_entry

        .globl kernel_entry64
kernel_entry64:
        cli
        movq %rsi, %r12             // command line pointer (or 0)

kernel_common_entry:
        leaq boot_stack_top(%rip), %rsp
        leaq boot_pml4(%rip), %rax
        movq %rax, %cr3
        lgdt boot_gdtr(%rip)
        pushq $0x08
        leaq 2f(%rip), %rax
        pushq %rax
        lretq
2:
        movl $0x10, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        xorl %eax, %eax
        movl %eax, %fs
        movl %eax, %gs
        cld
        leaq __bss_start(%rip), %rdi
        leaq __bss_end(%rip), %rcx
        subq %rdi, %rcx
        xorl %eax, %eax
        rep stosb
        // GS base = the boot CPU's per-CPU page, whose first word points to itself
        // (Kernel/SMP/PerCPU.swift); KERNEL_GS_BASE (what SWAPGS gives ring 3) stays 0.
        leaq percpu_pages(%rip), %rax
        movq %rax, (%rax)
        movq %rax, %rdx
        shrq $32, %rdx
        movl $0xC0000101, %ecx      // IA32_GS_BASE
        wrmsr
        xorl %eax, %eax
        xorl %edx, %edx
        movl $0xC0000102, %ecx      // IA32_KERNEL_GS_BASE
        wrmsr
        movq %r12, %rdi
        call kmain
3:
        cli
        hlt
        jmp 3b

// The GDT: null, kernel code/data, user data/code (the order SYSRET needs), then one TSS
// descriptor per CPU (selector 0x28 + 16 x CPU index), which the kernel fills in (a base is split
// across fields no relocation can express). MAX_CPUS must match KernelLayout.maximumCPUs.
#define MAX_CPUS 8
        .section .data
        .balign 16
        .globl boot_gdt
boot_gdt:
        .quad 0
        .quad 0x00AF9A000000FFFF    // 0x08 kernel code, 64-bit
        .quad 0x00CF92000000FFFF    // 0x10 kernel data
        .quad 0x00CFF2000000FFFF    // 0x18 user data (selector 0x1B)
        .quad 0x00AFFA000000FFFF    // 0x20 user code, 64-bit (selector 0x23)
        .fill 2 * MAX_CPUS, 8, 0    // 0x28 + 16 x i: CPU i's TSS
boot_gdt_end:
        .balign 8
        .globl boot_gdtr
boot_gdtr:
        .word boot_gdt_end - boot_gdt - 1
        .quad boot_gdt

// The kernel half of every address space: the first 1 GiB identity-mapped, all built at assembly
// time so boot costs no loops in ring 0. The first 2 MiB use 4 KiB pages so that page 0 stays
// unmapped (null guard) and the user-text pages can be made user-accessible; the rest use 2 MiB
// pages. Upper levels carry the user bit; leaves decide.
        .balign 4096
        .globl boot_pml4
boot_pml4:
        .quad boot_pdpt + 0x7
        .fill 511, 8, 0
boot_pdpt:
        .quad boot_pd + 0x7
        .fill 2, 8, 0
        .quad boot_pd_high + 0x3    // 3-4 GiB: supervisor-only, for the local APIC page
        .fill 508, 8, 0
boot_pd:
        .quad boot_pt0 + 0x7
        .set page, 1
        .rept 511
        .quad (page << 21) | 0x83
        .set page, page + 1
        .endr
        .globl boot_pt0
boot_pt0:
        .quad 0
        .set page, 1
        .rept 511
        .quad (page << 12) | 0x3
        .set page, page + 1
        .endr

// The local APICs' register page (0xFEE00000, the xAPIC default) as one uncached 2 MiB page:
// present, writable, PWT, PCD, PS; supervisor-only. Every address space shares it through PML4
// entry 0.
boot_pd_high:
        .fill 503, 8, 0
        .quad 0xFEE00000 | 0x9B
        .fill 8, 8, 0

        .section .bss
        .balign 16
boot_stack:
        .space 16384
        .globl boot_stack_top
boot_stack_top:
