// CPU primitives the Swift kernel cannot express (Swift has no inline assembly). Only the native
// platform (Kernel/Platform/NativePlatform.swift) calls these; a paravirtual platform would replace
// the privileged ones with hypercalls. System V calling convention.

        .text
        .macro FUNC name
        .globl \name
        .type \name, @function
\name:
        .endm

FUNC cpu_outb
        movl %edi, %edx
        movl %esi, %eax
        outb %al, %dx
        ret
FUNC cpu_outw
        movl %edi, %edx
        movl %esi, %eax
        outw %ax, %dx
        ret
FUNC cpu_inb
        movl %edi, %edx
        xorl %eax, %eax
        inb %dx, %al
        ret
FUNC cpu_read_cr2
        movq %cr2, %rax
        ret
FUNC cpu_read_cr3
        movq %cr3, %rax
        ret
FUNC cpu_write_cr3
        movq %rdi, %cr3
        ret
FUNC cpu_write_cr8
        movq %rdi, %cr8
        ret
FUNC cpu_invlpg
        invlpg (%rdi)
        ret
FUNC cpu_rdtsc
        rdtsc
        shlq $32, %rdx
        orq %rdx, %rax
        ret
FUNC cpu_rdmsr
        movl %edi, %ecx
        rdmsr
        shlq $32, %rdx
        orq %rdx, %rax
        ret
FUNC cpu_wrmsr
        movl %edi, %ecx
        movq %rsi, %rax
        movq %rsi, %rdx
        shrq $32, %rdx
        wrmsr
        ret
FUNC cpu_cli
        cli
        ret
FUNC cpu_sti
        sti
        ret
// Enable interrupts, wait for one, disable them again (STI's shadow makes STI;HLT atomic).
FUNC cpu_wait_for_interrupt
        sti
        hlt
        cli
        ret
FUNC cpu_halt_forever
        cli
1:      hlt
        jmp 1b
// cpu_load_gdt(gdtr): reload CS and the data segments too.
FUNC cpu_load_gdt
        lgdt (%rdi)
        ret
FUNC cpu_load_idt
        lidt (%rdi)
        ret
FUNC cpu_load_tr
        ltr %di
        ret

// The kernel's freestanding C library: the Swift runtime needs these, and a Swift loop would be
// turned back into a call to memset by the optimizer. One string instruction each.
#include "string.inc"

// The embedded stdlib seeds Hasher from this; the kernel has no entropy source and needs none.
FUNC arc4random_buf
        movq %rsi, %rcx
        xorl %eax, %eax
        rep stosb
        ret

// The kernel allocator never frees (Kernel/Heap.swift).
FUNC free
        ret

// kernel_symbol(index): addresses the linker and assembler decide (see Kernel/Layout.swift).
FUNC kernel_symbol
        leaq kernel_symbol_table(%rip), %rax
        movq (%rax,%rdi,8), %rax
        ret

        .section .data
        .balign 8
kernel_symbol_table:
        .quad __image_start         // 0
        .quad __image_end           // 1 (end of .bss)
        .quad __usertext_start      // 2
        .quad __usertext_end        // 3
        .quad boot_pml4             // 4
        .quad boot_pt0              // 5
        .quad boot_gdt              // 6
        .quad boot_gdtr             // 7
        .quad trap_stub_table       // 8
        .quad syscall_entry         // 9
        .quad trap_return           // 10
        .quad user_start            // 11
        .quad syscall_kernel_rsp    // 12
        .quad kernel_tss            // 13
        .quad kernel_idt            // 14
        .quad double_fault_stack_top // 15
        .quad task_stacks           // 16
        .quad kernel_heap           // 17
        .quad kernel_heap_end       // 18
        .quad kernel_clock_page     // 19

        .section .bss
        .balign 4096
        .globl kernel_idt
kernel_idt:
        .space 4096 + 16             // 256 gates, then the IDTR pseudo-descriptor
        .balign 16
kernel_tss:
        .space 112
        .balign 16
double_fault_stack:
        .space 8192
double_fault_stack_top:
        .balign 4096
task_stacks:
        .space 16384 * 8            // MAX_TASKS kernel stacks of 16 KiB
        .balign 16
kernel_heap:
        .space 65536
kernel_heap_end:
        .balign 4096
kernel_clock_page:                  // mapped read-only into every task (Kernel/ClockPage.swift)
        .space 4096
