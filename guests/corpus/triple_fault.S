# Triple fault: with an empty IDT (limit 0) a #UD cannot be delivered, nor the #GP and #DF that
# follow, so the CPU shuts down: status 6 and a triple-fault shutdown on every engine.
#include "common.S"
main:
    PRINT "loading an empty IDT, then ud2"
    call newline
    lidt empty_idtr(%rip)
    ud2
    PRINT "still running"
    call newline
    jmp poweroff
    .balign 8
empty_idtr:
    .word 0
    .quad 0
