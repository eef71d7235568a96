# Paging: own 4-level tables at 0x30000 (PML4, PDPT, PD with a 2 MiB user page for 0-2 MiB, a page
# table for 2-4 MiB); A/D bits, #PF error codes and CR2 for not-present, read-only with CR0.WP,
# user access to a supervisor page and an NX fetch; map/unmap and INVLPG of a changed PTE.
#include "common.S"
    .set PML4, 0x30000
    .set PT, 0x33000
    .set PAGE, 0x200000
main:
    mov $0xc0000080, %ecx       # EFER.NXE
    rdmsr
    or $0x800, %eax
    wrmsr
    mov $PML4, %edi
    mov $0x800, %ecx
    xor %eax, %eax
    rep stosq
    movq $0x31007, PML4
    movq $0x32007, 0x31000
    movq $0x87, 0x32000         # 0-2 MiB: 2 MiB page, user, writable
    movq $0x33007, 0x32008      # 2-4 MiB: page table
    movq $0x200007, PT          # 0x200000 user RW, A/D clear
    movq $0x201001, PT + 8      # 0x201000 supervisor read-only
    movq $0x202003, PT + 16     # 0x202000 supervisor RW
    movq $0, PT + 24            # 0x203000 not present
    movabs $0x8000000000204003, %rax
    mov %rax, PT + 32           # 0x204000 NX
    movq $0x206003, PT + 40     # 0x205000 -> 0x206000, later 0x207000
    movb $0x55, 0x200000        # through the boot identity map, before the switch
    movb $0xab, 0x201000
    movb $0xcd, 0x203000
    movb $0xc3, 0x204000        # ret
    movw $0x1111, 0x206000
    movw $0x2222, 0x207000
    mov $PML4, %eax
    mov %rax, %cr3
    PRINT "own tables loaded"
    call newline

    mov PT, %rax
    and $0x60, %eax
    SHOW "A/D before: ", %rax
    movzbl PAGE, %ebx
    mov PT, %rax
    and $0x60, %eax
    SHOW "A/D after read: ", %rax
    movb $0x56, PAGE
    mov PT, %rax
    and $0x60, %eax
    SHOW "A/D after write: ", %rax
    SHOW "value read: ", %rbx

    PRINT "read not present: "
    TRY movzbl 0x203000, %ebx
    movq $0x203003, PT + 24
    invlpg 0x203000
    movzbl 0x203000, %ebx
    SHOW "mapped, read: ", %rbx
    movq $0, PT + 24
    invlpg 0x203000
    PRINT "unmapped again: "
    TRY movzbl 0x203000, %ebx

    movzbl 0x201000, %ebx
    SHOW "read-only page reads: ", %rbx
    PRINT "write read-only, WP=1: "
    TRY movb $0x77, 0x201000
    mov %cr0, %rax
    btr $16, %rax
    mov %rax, %cr0
    movb $0x77, 0x201000
    bts $16, %rax
    mov %rax, %cr0
    movzbl 0x201000, %ebx
    SHOW "write with WP=0 stored: ", %rbx

    PRINT "fetch from NX page: "
    mov $0x204000, %eax
    mov %rax, EXPECT_RIP
    lea 1f(%rip), %rax
    mov %rax, RESUME_RIP
    mov %rsp, RESUME_RSP
    mov $0x204000, %eax
    call *%rax
    PRINT "no fault"
    call newline
1:  btrq $63, PT + 32
    invlpg 0x204000
    mov $0x204000, %eax
    call *%rax
    PRINT "after clearing NX the call returns"
    call newline

    PRINT "ring 3 reads supervisor page: "
    lea user_read(%rip), %rax
    mov %rax, EXPECT_RIP
    USER_CALL user_read, 0x2
    PRINT "ring 3 writes user page: "
    USER_CALL user_write, 0x2
    movzbl PAGE, %ebx
    SHOW "stored ", %rbx

    movzwl 0x205000, %ebx
    SHOW "0x205000 reads: ", %rbx
    movq $0x207003, PT + 40
    invlpg 0x205000
    movzwl 0x205000, %ebx
    SHOW "remapped + invlpg reads: ", %rbx
    jmp poweroff

user_read:
    movzbl 0x202000, %eax
    USER_RET
user_write:
    movb $0x99, PAGE
    USER_RET
