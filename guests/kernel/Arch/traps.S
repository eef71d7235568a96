// Trap stubs, the SYSCALL entry and the context switch.
//
// Every entry builds the same TrapFrame (see Kernel/TrapFrame.swift) on the current task's kernel
// stack: 15 general registers, vector, error code, then the hardware frame (RIP, CS, RFLAGS, RSP,
// SS). Interrupts and exceptions leave through `trap_return` (IRETQ); system calls through SYSRETQ.

        .text
        .macro TRAP_NOERR n
        .globl trap_stub_\n
trap_stub_\n:
        pushq $0
        pushq $\n
        jmp trap_common
        .endm

        .macro TRAP_ERR n
        .globl trap_stub_\n
trap_stub_\n:
        pushq $\n
        jmp trap_common
        .endm

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

        TRAP_NOERR 0
        TRAP_NOERR 1
        TRAP_NOERR 2
        TRAP_NOERR 3
        TRAP_NOERR 4
        TRAP_NOERR 5
        TRAP_NOERR 6
        TRAP_NOERR 7
        TRAP_ERR 8
        TRAP_NOERR 9
        TRAP_ERR 10
        TRAP_ERR 11
        TRAP_ERR 12
        TRAP_ERR 13
        TRAP_ERR 14
        TRAP_NOERR 15
        TRAP_NOERR 16
        TRAP_ERR 17
        TRAP_NOERR 18
        TRAP_NOERR 19
        TRAP_NOERR 20
        TRAP_ERR 21
        TRAP_NOERR 22
        TRAP_NOERR 23
        TRAP_NOERR 24
        TRAP_NOERR 25
        TRAP_NOERR 26
        TRAP_NOERR 27
        TRAP_NOERR 28
        TRAP_ERR 29
        TRAP_ERR 30
        TRAP_NOERR 31
        TRAP_NOERR 32
        TRAP_NOERR 33
        TRAP_NOERR 34
        TRAP_NOERR 35
        TRAP_NOERR 36
        TRAP_NOERR 37
        TRAP_NOERR 38
        TRAP_NOERR 39
        TRAP_NOERR 40
        TRAP_NOERR 41
        TRAP_NOERR 42
        TRAP_NOERR 43
        TRAP_NOERR 44
        TRAP_NOERR 45
        TRAP_NOERR 46
        TRAP_NOERR 47
        TRAP_NOERR 255
        TRAP_NOERR 239
        TRAP_NOERR 240
        TRAP_NOERR 241
        TRAP_NOERR 242

// From ring 3, SWAPGS makes GS the CPU's per-CPU page (Kernel/SMP/PerCPU.swift); it is undone on
// the way back. 24(%rsp) is the saved CS here, 8(%rsp) in trap_return before IRETQ.
trap_common:
        testb $3, 24(%rsp)
        jz 1f
        swapgs
1:
        SAVE_GPRS
        cld
        movq %rsp, %rdi
        call trap_dispatch
        .globl trap_return
trap_return:
        RESTORE_GPRS
        addq $16, %rsp              // vector and error code
        testb $3, 8(%rsp)
        jz 2f
        swapgs
2:
        iretq

// SYSCALL: RCX = user RIP, R11 = user RFLAGS, interrupts masked by IA32_FMASK. The per-CPU page
// (through GS after SWAPGS) holds this CPU's kernel stack at 8 and a scratch word at 16.
        .globl syscall_entry
syscall_entry:
        swapgs
        movq %rsp, %gs:16
        movq %gs:8, %rsp
        pushq $0x1B                 // SS
        pushq %gs:16
        pushq %r11                  // RFLAGS
        pushq $0x23                 // CS
        pushq %rcx                  // RIP
        pushq $0                    // error code
        pushq $256                  // vector: 256 marks a system call
        SAVE_GPRS
        cld
        movq %rsp, %rdi
        call syscall_dispatch
        RESTORE_GPRS
        addq $16, %rsp
        movq 0(%rsp), %rcx          // RIP
        movq 16(%rsp), %r11         // RFLAGS
        movq 24(%rsp), %rsp         // user RSP
        swapgs
        sysretq

// switch_context(UInt64 *save, UInt64 next): saves the callee-saved registers on this stack,
// stores RSP in *save and resumes the stack `next` (which was saved the same way, or built by
// the kernel to return into trap_return for a new task).
        .globl switch_context
switch_context:
        pushq %rbp
        pushq %rbx
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, (%rdi)
        movq %rsi, %rsp
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbx
        popq %rbp
        ret

        .section .data
        .balign 8
        .globl trap_stub_table
trap_stub_table:
        .quad trap_stub_0
        .quad trap_stub_1
        .quad trap_stub_2
        .quad trap_stub_3
        .quad trap_stub_4
        .quad trap_stub_5
        .quad trap_stub_6
        .quad trap_stub_7
        .quad trap_stub_8
        .quad trap_stub_9
        .quad trap_stub_10
        .quad trap_stub_11
        .quad trap_stub_12
        .quad trap_stub_13
        .quad trap_stub_14
        .quad trap_stub_15
        .quad trap_stub_16
        .quad trap_stub_17
        .quad trap_stub_18
        .quad trap_stub_19
        .quad trap_stub_20
        .quad trap_stub_21
        .quad trap_stub_22
        .quad trap_stub_23
        .quad trap_stub_24
        .quad trap_stub_25
        .quad trap_stub_26
        .quad trap_stub_27
        .quad trap_stub_28
        .quad trap_stub_29
        .quad trap_stub_30
        .quad trap_stub_31
        .quad trap_stub_32
        .quad trap_stub_33
        .quad trap_stub_34
        .quad trap_stub_35
        .quad trap_stub_36
        .quad trap_stub_37
        .quad trap_stub_38
        .quad trap_stub_39
        .quad trap_stub_40
        .quad trap_stub_41
        .quad trap_stub_42
        .quad trap_stub_43
        .quad trap_stub_44
        .quad trap_stub_45
        .quad trap_stub_46
        .quad trap_stub_47
        .quad trap_stub_255
        .quad trap_stub_239
        .quad trap_stub_240
        .quad trap_stub_241
        .quad trap_stub_242

