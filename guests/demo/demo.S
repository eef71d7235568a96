#include "../include/pc.inc"
# Trivisor's built-in demo guest (`trivisor run` with no image).
#
# A flat 64-bit binary linked at 0x10000 and started in ring 0 long mode by SmallGuestBoot (page
# tables, GDT, stack at 0x9f000). It prints a banner on COM1 (16550 at 0x3f8, polling LSR.THRE),
# programs the PIC (vectors 0x20-0x2f, only IRQ 0 unmasked) and the PIT (channel 0, mode 2,
# 100 Hz), then HLTs until its interrupt handler has counted TICKS timer interrupts, printing
# progress, and powers off cleanly through port 0x604 (status 0).
#
# Ring-0 work is kept short on purpose: hosts whose /dev/kvm emulates guest ring 0 run it
# instruction by instruction (see DEVELOPERS.md).
    .code64
    .text
    .globl _start
    .set COM1, 0x3f8
    .set IDT, 0x8000
    .set TICKS, 20
    .set REPORT_EVERY, 5
    .set PIT_DIVISOR, 11932          # 1193182 Hz / 11932 = 100 Hz

_start:
    # COM1: 8 data bits, no parity, 1 stop bit; no UART interrupts.
    mov $(COM1 + 3), %dx
    mov $0x03, %al
    out %al, %dx
    mov $(COM1 + 1), %dx
    xor %al, %al
    out %al, %dx
    lea banner(%rip), %rsi
    call puts

    # IDT gates 0x20..0x2f: 0x20 -> timer, the rest -> spurious (EOI and return).
    IDT_TIMER_GATES IDT

    # PIC: ICW1-ICW4 for master (vectors 0x20) and slave (0x28); unmask IRQ 0 only.
    PIC_INIT_UNMASK_IRQ0

    # PIT channel 0: lobyte/hibyte, mode 2 (rate generator), 100 Hz.
    mov $0x34, %al
    out %al, $0x43
    mov $(PIT_DIVISOR & 0xff), %al
    out %al, $0x40
    mov $(PIT_DIVISOR >> 8), %al
    out %al, $0x40
    sti

wait:
    hlt
    mov ticks(%rip), %eax
    cmp next_report(%rip), %eax
    jb wait
    addl $REPORT_EVERY, next_report(%rip)
    mov %eax, %ebx
    lea progress(%rip), %rsi
    call puts
    mov %ebx, %eax
    call print_decimal
    lea of_total(%rip), %rsi
    call puts
    cmp $TICKS, %ebx
    jb wait

    cli
    lea goodbye(%rip), %rsi
    call puts
    mov $0x604, %dx
    mov $0x2000, %ax
    out %ax, %dx                 # clean power-off: status 0
3:  hlt
    jmp 3b

# puts: writes the NUL-terminated string at rsi to COM1.
puts:
    lodsb
    test %al, %al
    jz 2f
    mov %al, %ah
    mov $(COM1 + 5), %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    mov $COM1, %dx
    mov %ah, %al
    out %al, %dx
    jmp puts
2:  ret

# print_decimal: writes eax in decimal to COM1.
print_decimal:
    lea number_end(%rip), %rdi
    mov $10, %ecx
1:  xor %edx, %edx
    div %ecx
    add $'0', %dl
    dec %rdi
    mov %dl, (%rdi)
    test %eax, %eax
    jnz 1b
    mov %rdi, %rsi
    jmp puts

timer:
    push %rax
    incl ticks(%rip)
    mov $0x20, %al
    out %al, $0x20               # EOI
    pop %rax
    iretq

spurious:
    push %rax
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq

banner:
    .ascii "Trivisor demo guest: 64-bit long mode, ring 0, COM1 at 0x3f8\n"
    .asciz "programming the PIT (100 Hz) and the PIC; waiting in HLT for 20 timer interrupts\n"
progress:
    .asciz "  timer interrupts: "
of_total:
    .asciz " of 20\n"
goodbye:
    .asciz "done; powering off through port 0x604\n"

    .data
    .balign 8
idtr:
    .word 0x30 * 16 - 1
    .quad IDT
ticks:
    .long 0
next_report:
    .long REPORT_EVERY
number:
    .byte 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
number_end:
    .byte 0
