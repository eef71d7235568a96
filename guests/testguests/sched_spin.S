# CPU-bound for ever in ring 3 (started there by SmallGuestBoot with userMode): counts loop
# iterations in the 64-bit word at 0x9000, which the host reads as the guest's throughput
# (`trivisor bench sched`). No exits of its own. Flat 64-bit at 0x10000.
    .code64
    .text
    .globl _start
_start:
    mov $0x9000, %ebx
1:  incq (%rbx)
    jmp 1b
