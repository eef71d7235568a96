// The paravirtual (PV) entry of the reference kernel: booted by a Xen-style domain builder
// (`trivisor run --pv`, Sources/VMM/Loaders/ParavirtBoot.swift), the kernel runs at ring 3 and
// never executes a privileged instruction. This file holds the Xen ELF notes, the hypercall page,
// the 64-bit `pv_entry`, the hypercall trampoline, the trap-table handlers, the event upcall and
// the SYSCALL callback. Every kernel entry builds the native TrapFrame (Kernel/TrapFrame.swift)
// from Xen's bounce frame (RCX, R11, [error code], RIP, CS, RFLAGS, RSP, SS) and leaves through
// `pv_trap_return`, which returns with HYPERVISOR_iret (a plain IRETQ cannot switch page tables).

#define HYPERCALL_IRET 23
#define HYPERCALL_XEN_VERSION 17

        .macro FUNC name
        .globl \name
        .type \name, @function
\name:
        .endm

// The Xen ELF notes the builder reads: XEN_ELFNOTE_ENTRY (1) and XEN_ELFNOTE_HYPERCALL_PAGE (2).
        .section .note.Xen, "a"
        .balign 4
        .long 4, 8, 1
        .asciz "Xen"
        .quad pv_entry
        .long 4, 8, 2
        .asciz "Xen"
        .quad hypercall_page

// The hypercall page: the builder fills it with 128 stubs of 32 bytes (`mov $n, %eax`, the
// engine's trap, `ret`; the iret stub pushes RCX, R11, RAX first).
        .text
        .balign 4096
        .globl hypercall_page
hypercall_page:
        .fill 4096, 1, 0xCC

// Entered at ring 3 with RSI = start_info (virtual == physical: the image is linked at 1 MiB and
// the builder's virtual base is 0), RSP = the top of the builder's stack page, events masked.
FUNC pv_entry
        cld
        movq %rsi, %rdi             // start_info
        movq %rsp, %rsi             // the end of the builder's bootstrap area
        leaq boot_stack_top(%rip), %rsp
        call pv_start               // Kernel/Paravirt/ParavirtBoot.swift: returns the command line
        movq %rax, %rdi
        call kmain
1:      jmp 1b

// pv_hypercall(number, a1, a2, a3, a4, a5) -> RAX: the C arguments moved to Xen's registers
// (RDI RSI RDX R10 R8), then a call into stub `number` of the hypercall page.
FUNC pv_hypercall
        movq %rdi, %rax
        shlq $5, %rax
        leaq hypercall_page(%rip), %r11
        addq %rax, %r11
        movq %rsi, %rdi
        movq %rdx, %rsi
        movq %rcx, %rdx
        movq %r8, %r10
        movq %r9, %r8
        call *%r11
        ret

// The virtual interrupt flag: vcpu_info[0].evtchn_upcall_mask (byte 1 of the shared info page,
// mapped at pv_shared_info). Enabling re-checks evtchn_upcall_pending (byte 0): an event that
// arrived while masked is delivered at once by any hypercall (xen_version here).
FUNC pv_events_disable
        movb $1, pv_shared_info+1(%rip)
        ret
FUNC pv_events_enable
        movb $0, pv_shared_info+1(%rip)
        cmpb $0, pv_shared_info(%rip)
        jne 1f
        ret
1:      xorl %edi, %edi
        xorl %esi, %esi
        call hypercall_page + HYPERCALL_XEN_VERSION * 32
        ret

        .macro SAVE_GPRS
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        .endm

        .macro RESTORE_GPRS
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        .endm

// Exceptions through the trap table (registered with "mask events": like the native interrupt
// gates). The bounce frame's RCX and R11 go back into their registers.
        .macro PVTRAP_NOERR n
pv_trap_\n:
        popq %rcx
        popq %r11
        pushq $0
        pushq $\n
        jmp pv_trap_common
        .endm

        .macro PVTRAP_ERR n
pv_trap_\n:
        popq %rcx
        popq %r11
        pushq $\n
        jmp pv_trap_common
        .endm

        PVTRAP_NOERR 0
        PVTRAP_NOERR 1
        PVTRAP_NOERR 2
        PVTRAP_NOERR 3
        PVTRAP_NOERR 4
        PVTRAP_NOERR 5
        PVTRAP_NOERR 6
        PVTRAP_NOERR 7
        PVTRAP_ERR 8
        PVTRAP_NOERR 9
        PVTRAP_ERR 10
        PVTRAP_ERR 11
        PVTRAP_ERR 12
        PVTRAP_ERR 13
        PVTRAP_ERR 14
        PVTRAP_NOERR 15
        PVTRAP_NOERR 16
        PVTRAP_ERR 17
        PVTRAP_NOERR 18
        PVTRAP_NOERR 19

pv_trap_common:
        SAVE_GPRS
        cld
        call pv_native_selectors
        movq %rsp, %rdi
        call trap_dispatch
// The TrapFrame on the stack back to where it came from: HYPERVISOR_iret with flags 0 (RCX and
// R11 restored from the stub's pushes, i.e. from the frame). New tasks start here too.
        .globl pv_trap_return
pv_trap_return:
        RESTORE_GPRS
        addq $16, %rsp              // vector and error code
        pushq $0                    // iret flags
        jmp hypercall_page + HYPERCALL_IRET * 32

// The frame's CS and SS as the native kernel's would be (user 0x23/0x1B, kernel 0x08/0x10,
// Kernel/Descriptors.swift) in place of Xen's (0xE033 or 0xE030, 0xE02B): the kernel sees the same
// frames in both modes; HYPERVISOR_iret looks only at CS's RPL. Called right after SAVE_GPRS, so
// the frame's CS is at 8 + 18 * 8 from RSP (past the return address).
pv_native_selectors:
        testb $3, 8+18*8(%rsp)
        jz 1f
        movq $0x23, 8+18*8(%rsp)
        movq $0x1B, 8+21*8(%rsp)
        ret
1:      movq $0x08, 8+18*8(%rsp)
        movq $0x10, 8+21*8(%rsp)
        ret

// The event upcall (set_callbacks): events are masked on entry.
FUNC pv_upcall_entry
        popq %rcx
        popq %r11
        pushq $0
        pushq $0x20
        SAVE_GPRS
        cld
        call pv_native_selectors
        movq %rsp, %rdi
        call pv_event_dispatch
        jmp pv_trap_return

// The SYSCALL callback: a system call of guest user code, on the kernel stack (stack_switch),
// in kernel mode. Xen leaves events as they were: mask them first (SFMASK's IF clear, natively).
// The frame's RIP and RFLAGS are the user's RCX and R11.
FUNC pv_syscall_entry
        movb $1, pv_shared_info+1(%rip)
        popq %rcx
        popq %r11
        pushq $0
        pushq $256
        SAVE_GPRS
        cld
        call pv_native_selectors
        movq %rsp, %rdi
        call pv_syscall_dispatch
        jmp pv_trap_return

// The failsafe callback (a bad frame on the way back to the guest): a kernel panic.
FUNC pv_failsafe_entry
        andq $-16, %rsp
        call pv_failsafe
1:      jmp 1b

// atomic_exchange64(word, value) -> the value before (XCHG with memory is locked).
FUNC atomic_exchange64
        movq %rsi, %rax
        xchgq %rax, (%rdi)
        ret

// pv_symbol(index): addresses for the Swift side (Kernel/Paravirt/ParavirtBoot.swift).
FUNC pv_symbol
        leaq pv_symbol_table(%rip), %rax
        movq (%rax,%rdi,8), %rax
        ret

        .section .data
        .balign 8
pv_symbol_table:
        .quad pv_shared_info        // 0
        .quad pv_user_tables        // 1 (4 pages: the user root, L3, L2, L1 of the user text)
        .quad pv_trap_table_stubs   // 2
        .quad pv_upcall_entry       // 3
        .quad pv_syscall_entry      // 4
        .quad pv_failsafe_entry     // 5
        .quad pv_trap_return        // 6
        .quad hypercall_page        // 7

pv_trap_table_stubs:
        .quad pv_trap_0, pv_trap_1, pv_trap_2, pv_trap_3, pv_trap_4, pv_trap_5, pv_trap_6, pv_trap_7
        .quad pv_trap_8, pv_trap_9, pv_trap_10, pv_trap_11, pv_trap_12, pv_trap_13, pv_trap_14
        .quad pv_trap_15, pv_trap_16, pv_trap_17, pv_trap_18, pv_trap_19

        .section .bss
        .balign 4096
        .globl pv_shared_info
pv_shared_info:                     // remapped onto the shared info frame by pv_start
        .space 4096
pv_user_tables:
        .space 4096 * 4
