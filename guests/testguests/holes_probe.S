# The probe guest of `trivisor holes` (issue #16): executes each sensitive-but-unprivileged x86
# instruction (Robin & Irvine, 2000) in ring 0 with its own descriptor tables, where a correctly
# virtualized CPU gives a known answer, and stores the raw results for the host to classify
# (Sources/Holes/HoleProbe.swift holds the same layout). Flat 64-bit ring-0 binary linked at
# 0x10000, started by SmallGuestBoot; ends through isa-debug-exit (port 0xF4): 0 when every probe
# ran, 1 from an exception handler (the vector is in the result area).
#
# Tables (guest-physical): GDT 0x8000 (limit 0x47: SmallGuestBoot's selectors with the accessed
# bits preset, TSS 0x28, LDT 0x38), LDT 0x8800 (one data descriptor), IDT 0x9000 (limit 0xFFF:
# vectors 0-31 record the vector and stop, vector 0x80 is the INT n probe's DPL-0 gate).
# Result area 0xA000: +0 done magic, +8 index of the probe under way, +0x10 exception vector
# (all ones when none), +0x18 skip mask (bit i: jump over probe i, set by the host), +0x40 + 16*i probe i's value and auxiliary quadword.
    .code64
    .text
    .globl _start

    .set RESULTS, 0xA000
    .set CURRENT, RESULTS + 8
    .set VECTOR, RESULTS + 0x10
    .set SKIP, RESULTS + 0x18
    .set GDT, 0x8000
    .set LDT, 0x8800
    .set IDT, 0x9000

# A probe the host marked in the skip mask (it stopped the guest on an earlier run) is jumped over.
.macro begin i
    movq $\i, CURRENT
    btq $\i, SKIP
    jc probe_end_\i
.endm
.macro finish i
probe_end_\i:
.endm
.macro value i, reg
    mov \reg, RESULTS + 0x40 + 16 * \i
.endm
.macro aux i, reg
    mov \reg, RESULTS + 0x48 + 16 * \i
.endm
.macro gdtentry offset, descriptor
    movabs $\descriptor, %rax
    mov %rax, GDT + \offset
.endm

_start:
    movq $-1, VECTOR
    # The guest's own GDT: code and data at DPL 0 and 3 (accessed bits set, so loading them
    # writes nothing), the TSS SmallGuestBoot built (available again) and an LDT.
    gdtentry 0x00, 0
    gdtentry 0x08, 0x00AF9B000000FFFF
    gdtentry 0x10, 0x00CF93000000FFFF
    gdtentry 0x18, 0x00AFFB000000FFFF
    gdtentry 0x20, 0x00CFF3000000FFFF
    gdtentry 0x28, 0x0000890078000067
    gdtentry 0x30, 0
    gdtentry 0x38, 0x000082008800000F
    gdtentry 0x40, 0
    movabs $0x00CF93000000FFFF, %rax
    mov %rax, LDT
    movq $0, LDT + 8
    lgdt gdtr(%rip)
    push $0x08
    lea 1f(%rip), %rax
    push %rax
    lretq
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov $0x28, %ax
    ltr %ax
    mov $0x38, %ax
    lldt %ax
    # IDT: vectors 0-31 to their stubs, 0x80 to the INT n probe.
    lea exception_stubs(%rip), %rsi
    mov $IDT, %rdi
    mov $32, %ecx
2:  call set_gate
    add $16, %rsi
    add $16, %rdi
    dec %ecx
    jnz 2b
    lea int80_handler(%rip), %rsi
    mov $IDT + 16 * 0x80, %rdi
    call set_gate
    lidt idtr(%rip)
    # CR0.TS set by the guest: SMSW must show it.
    mov %cr0, %rax
    or $8, %rax
    mov %rax, %cr0

    # 0 SGDT: base 0x8000, limit 0x47.
    begin 0
    sgdt scratch(%rip)
    movzwl scratch(%rip), %eax
    aux 0, %rax
    mov scratch+2(%rip), %rax
    value 0, %rax
    # 1 SIDT: base 0x9000, limit 0xFFF.
    finish 0
    begin 1
    sidt scratch(%rip)
    movzwl scratch(%rip), %eax
    aux 1, %rax
    mov scratch+2(%rip), %rax
    value 1, %rax
    # 2 SLDT: 0x38.
    finish 1
    begin 2
    xor %eax, %eax
    sldt %ax
    value 2, %rax
    # 3 SMSW: CR0 bits 15:0 = 0x003B (PE MP ET TS NE).
    finish 2
    begin 3
    xor %eax, %eax
    smsw %ax
    value 3, %rax
    # 4 STR: 0x28.
    finish 3
    begin 4
    xor %eax, %eax
    str %ax
    value 4, %rax
    # 5 PUSHF after CLI: IF = 0.
    finish 4
    begin 5
    cli
    pushfq
    pop %rax
    value 5, %rax
    # 6 POPF clearing IF (after STI), then PUSHF: IF = 0.
    finish 5
    begin 6
    sti
    pushfq
    pop %rax
    and $~0x200, %rax
    push %rax
    popfq
    pushfq
    pop %rax
    value 6, %rax
    cli
    # 7 MOV r, CS: 0x08 (RPL 0).
    finish 6
    begin 7
    xor %eax, %eax
    mov %cs, %ax
    value 7, %rax
    # 8 MOV r, DS: 0x10 (PUSH CS, PUSH/POP DS, ES, SS are invalid in 64-bit mode).
    finish 7
    begin 8
    xor %eax, %eax
    mov %ds, %ax
    value 8, %rax
    # 9 MOV r, SS: 0x10 (RPL 0).
    finish 8
    begin 9
    xor %eax, %eax
    mov %ss, %ax
    value 9, %rax
    # 10 PUSH FS / POP FS: the selector 0x10 back.
    finish 9
    begin 10
    mov $0x10, %ax
    mov %ax, %fs
    push %fs
    pop %fs
    xor %eax, %eax
    mov %fs, %ax
    value 10, %rax
    # 11 LAR of 0x08: ZF = 1, rights 0x00A09B00 (bits 19:16 ignored).
    finish 10
    begin 11
    xor %eax, %eax
    mov $0x08, %ecx
    lar %ecx, %eax
    pushfq
    pop %rdx
    value 11, %rax
    aux 11, %rdx
    # 12 LSL of 0x10: ZF = 1, limit 0xFFFFFFFF.
    finish 11
    begin 12
    xor %eax, %eax
    mov $0x10, %ecx
    lsl %ecx, %eax
    pushfq
    pop %rdx
    value 12, %rax
    aux 12, %rdx
    # 13 VERR of 0x08: ZF = 1.
    finish 12
    begin 13
    mov $0x08, %ecx
    verr %cx
    pushfq
    pop %rdx
    aux 13, %rdx
    # 14 VERW of 0x10: ZF = 1.
    finish 13
    begin 14
    mov $0x10, %ecx
    verw %cx
    pushfq
    pop %rdx
    aux 14, %rdx
    # 15 Far RET to 0x08: CS 0x08 afterwards.
    finish 14
    begin 15
    push $0x08
    lea 3f(%rip), %rax
    push %rax
    lretq
3:  xor %eax, %eax
    mov %cs, %ax
    value 15, %rax
    # 16 Far JMP through 0x08 (m16:32): CS 0x08 afterwards.
    finish 15
    begin 16
    ljmpl *far_jmp_target(%rip)
far_jmp_landing:
    xor %eax, %eax
    mov %cs, %ax
    value 16, %rax
    # 17 Far CALL through 0x08 (m16:32): CS 0x08 in the callee, back after LRET.
    finish 16
    begin 17
    lcalll *far_call_target(%rip)
    mov %cs, %dx
    and $0xFFFF, %edx
    aux 17, %rdx
    # 18 INT 0x80 through a DPL-0 gate: the handler runs (aux 1) and sees CS 0x08 pushed.
    finish 17
    begin 18
    int $0x80
    finish 18

    movabs $0x53454C4F48, %rax
    mov %rax, RESULTS
    mov $0xf4, %dx
    xor %eax, %eax
    out %al, %dx
4:  hlt
    jmp 4b

far_call_callee:
    xor %eax, %eax
    mov %cs, %ax
    value 17, %rax
    lretl

int80_handler:
    mov 8(%rsp), %rax
    and $0xFFFF, %eax
    value 18, %rax
    movq $1, RESULTS + 0x48 + 16 * 18
    iretq

# rsi: handler, rdi: 16-byte IDT entry to fill (64-bit interrupt gate, DPL 0, selector 0x08).
set_gate:
    mov %esi, %eax
    and $0xFFFF, %eax
    or $0x00080000, %eax
    mov %eax, (%rdi)
    mov %esi, %eax
    and $0xFFFF0000, %eax
    or $0x8E00, %eax
    mov %eax, 4(%rdi)
    movq $0, 8(%rdi)
    ret

fault_common:
    movzbl %al, %eax
    mov %rax, VECTOR
    mov $0xf4, %dx
    mov $1, %al
    out %al, %dx
5:  hlt
    jmp 5b

    .balign 16
exception_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    mov $\v, %al
    jmp fault_common
    .endr

    .balign 8
gdtr:
    .word 0x47
    .quad GDT
    .balign 8
idtr:
    .word 0xFFF
    .quad IDT
    .balign 8
far_jmp_target:
    .long far_jmp_landing
    .word 0x08
    .balign 8
far_call_target:
    .long far_call_callee
    .word 0x08
    .balign 8
scratch:
    .quad 0, 0
