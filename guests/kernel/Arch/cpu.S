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
// The CPU's per-CPU page (Kernel/SMP/PerCPU.swift): its first word, through GS.
FUNC cpu_percpu
        movq %gs:0, %rax
        ret
FUNC cpu_pause
        pause
        ret

// Atomics on 64-bit words for the SMP kernel (Kernel/SMP). Each is one locked instruction (or a
// plain aligned load, which x86 makes atomic); calls are opaque, so the compiler never caches
// the value in a register across a polling loop.
FUNC atomic_load64
        movq (%rdi), %rax
        ret
// A store with a full barrier (XCHG with memory is always locked).
FUNC atomic_store64
        xchgq %rsi, (%rdi)
        ret
// atomic_fetch_add64(word, value) -> the value before.
FUNC atomic_fetch_add64
        movq %rsi, %rax
        lock xaddq %rax, (%rdi)
        ret
// atomic_compare_exchange64(word, expected, desired) -> 1 when stored.
FUNC atomic_compare_exchange64
        movq %rsi, %rax
        lock cmpxchgq %rdx, (%rdi)
        sete %al
        movzbl %al, %eax
        ret
FUNC atomic_or64
        lock orq %rsi, (%rdi)
        ret
FUNC atomic_and64
        lock andq %rsi, (%rdi)
        ret

// Memory-mapped device registers (the local APIC): one 32-bit access each, never merged.
FUNC mmio_read32
        movl (%rdi), %eax
        ret
FUNC mmio_write32
        movl %esi, (%rdi)
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
        .quad percpu_pages          // 12
        .quad cpu_stacks            // 13
        .quad kernel_idt            // 14
        .quad double_fault_stack_top // 15
        .quad task_stacks           // 16
        .quad kernel_heap           // 17
        .quad kernel_heap_end       // 18
        .quad kernel_clock_page     // 19
        .quad cpu_fault_stacks      // 20
        .quad ap_trampoline_start   // 21
        .quad ap_trampoline_end     // 22
        .quad ap_trampoline_params  // 23
        .quad ap_entry64            // 24

        .section .bss
        .balign 4096
        .globl kernel_idt
kernel_idt:
        .space 4096 + 16             // 256 gates, then the IDTR pseudo-descriptor
        .balign 16
double_fault_stack:
        .space 8192
double_fault_stack_top:             // the boot CPU's IST1 stack
        .balign 4096
        .globl percpu_pages
percpu_pages:                       // MAX_CPUS pages: per-CPU data and that CPU's TSS
        .space 4096 * 8
cpu_stacks:                         // MAX_CPUS scheduler/idle stacks of 16 KiB (the boot CPU's unused)
        .space 16384 * 8
cpu_fault_stacks:                   // MAX_CPUS double-fault (IST1) stacks of 4 KiB
        .space 4096 * 8
task_stacks:
        .space 16384 * 16           // MAX_TASKS kernel stacks of 16 KiB
        .balign 16
kernel_heap:
        .space 65536
kernel_heap_end:
        .balign 4096
kernel_clock_page:                  // mapped read-only into every task (Kernel/ClockPage.swift)
        .space 4096
