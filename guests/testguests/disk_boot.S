/* A hard disk's boot sector (MBR) for the IDE tests: SeaBIOS loads it from sector 0 of a raw
 * image on the IDE controller to 0x7C00 and jumps to it with the boot drive in DL. Everything it
 * does goes through the BIOS's disk services (int 13h extensions), so the test proves the path
 * firmware -> its ATA driver -> Trivisor's IDE controller -> the image file:
 *   1. prints "disk boot: sector 0 running" on COM1;
 *   2. reads sector 1 (AH=42h) to 0x8000 and prints it (the test puts a NUL-terminated line
 *      there);
 *   3. writes sector 2 (AH=43h) from a message in this sector, reads it back (AH=42h) to 0x9000
 *      and prints it (the test then finds that message in the image file);
 *   4. reads sector count 1 at an LBA past the end of the disk and expects the BIOS to report an
 *      error (carry set), printing "disk boot: read past the end refused";
 *   5. powers the machine off (port 0x604, SLP_EN: exit status 0).
 * A failing step prints "disk boot: FAILED <step>" and powers off with status 0 too: the test
 * reads the console. */
        .code16
        .text
        .globl _start
_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        mov $0x7C00, %sp
        sti
        mov %dl, drive

        mov $msg_running, %si
        call puts

        /* 2: sector 1 -> 0x8000 */
        movw $0x8000, dap_buffer
        movl $1, dap_lba
        mov $0x42, %ah
        call disk
        jc fail_read
        mov $0x8000, %si
        call puts

        /* 3: this sector's message -> sector 2, read back to 0x9000 */
        movw $msg_written, dap_buffer
        movl $2, dap_lba
        mov $0x4300, %ax
        call disk
        jc fail_write
        movw $0x9000, dap_buffer
        mov $0x42, %ah
        call disk
        jc fail_readback
        mov $0x9000, %si
        call puts

        /* 4: an LBA past the end of the disk */
        movl $0x00FFFFF0, dap_lba
        movw $0xA000, dap_buffer
        mov $0x42, %ah
        call disk
        jnc fail_range
        mov $msg_range, %si
        call puts
        jmp power_off

fail_read:
        mov $msg_fail_read, %si
        jmp fail
fail_write:
        mov $msg_fail_write, %si
        jmp fail
fail_readback:
        mov $msg_fail_readback, %si
        jmp fail
fail_range:
        mov $msg_fail_range, %si
fail:
        push %si
        mov $msg_failed, %si
        call puts
        pop %si
        call puts
        mov $msg_newline, %si
        call puts
power_off:
        mov $0x604, %dx
        mov $0x2000, %ax
        out %ax, %dx
        cli
1:      hlt
        jmp 1b

/* int 13h with the disk address packet below; AH (and AL) set by the caller. */
disk:
        mov $dap, %si
        mov drive, %dl
        int $0x13
        ret

/* Prints the NUL-terminated string at DS:SI on COM1 (waits for the transmitter). */
puts:
        lodsb
        test %al, %al
        jz 2f
        mov %al, %bl
        mov $0x3FD, %dx
1:      in %dx, %al
        test $0x20, %al
        jz 1b
        mov $0x3F8, %dx
        mov %bl, %al
        out %al, %dx
        jmp puts
2:      ret

drive:  .byte 0x80
        .p2align 2
dap:    .byte 16, 0
        .word 1                         /* sectors */
dap_buffer:
        .word 0                         /* offset */
        .word 0                         /* segment */
dap_lba:
        .long 0, 0

msg_running:    .asciz "disk boot: sector 0 running\r\n"
msg_written:    .asciz "disk boot: sector 2 written by the guest\r\n"
msg_range:      .asciz "disk boot: read past the end refused\r\n"
msg_failed:     .asciz "disk boot: FAILED "
msg_fail_read:  .asciz "read of sector 1"
msg_fail_write: .asciz "write of sector 2"
msg_fail_readback: .asciz "read back of sector 2"
msg_fail_range: .asciz "read past the end succeeded"
msg_newline:    .asciz "\r\n"

        .org 510
        .byte 0x55, 0xAA
