// A test-only Multiboot v1 kernel that boots the reference kernel the way Trivisor's ELF64 loader
// does, so `qemu-system-x86_64 -kernel elf64-boot-shim.elf -initrd trivisor-kernel.elf` exercises
// the ELF64 contract (docs/guest-kernel.md): copy each PT_LOAD to p_paddr and zero its bss, build
// identity page tables for 4 GiB with 2 MiB pages and a flat GDT whose selectors differ from the
// kernel's, enter long mode with interrupts off and a tiny stack, RSI = the command line (the
// shim's own Multiboot command line), and jump to e_entry.

#define MULTIBOOT_MAGIC 0x1BADB002
#define MULTIBOOT_FLAGS 0x00010000

        .section .multiboot, "a"
        .balign 4
header:
        .long MULTIBOOT_MAGIC
        .long MULTIBOOT_FLAGS
        .long -(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)
        .long header
        .long __image_start
        .long __data_end
        .long __bss_end
        .long shim_entry

        .text
        .code32
        .globl shim_entry
shim_entry:
        cli
        movl $shim_stack_top, %esp
        movl $0, cmdline
        testl $4, (%ebx)            // command line present
        jz 1f
        movl 16(%ebx), %eax
        movl %eax, cmdline
1:      testl $8, (%ebx)            // modules present
        jz fail
        cmpl $0, 20(%ebx)
        je fail
        movl 24(%ebx), %eax
        movl (%eax), %ebp           // mod_start: the ELF64 image

        cmpl $0x464C457F, (%ebp)    // "\x7fELF"
        jne fail
        movl 24(%ebp), %eax         // e_entry (low half; the kernel lies below 4 GiB)
        movl %eax, entry
        movl 32(%ebp), %ebx         // e_phoff
        addl %ebp, %ebx
        movzwl 56(%ebp), %edx       // e_phnum
2:      testl %edx, %edx
        jz 4f
        cmpl $1, (%ebx)             // PT_LOAD
        jne 3f
        movl 8(%ebx), %esi          // p_offset
        addl %ebp, %esi
        movl 24(%ebx), %edi         // p_paddr
        movl 32(%ebx), %ecx         // p_filesz
        rep movsb
        movl 40(%ebx), %ecx         // p_memsz - p_filesz
        subl 32(%ebx), %ecx
        xorl %eax, %eax
        rep stosb
3:      movzwl 54(%ebp), %eax       // e_phentsize
        addl %eax, %ebx
        decl %edx
        jmp 2b

4:      // Identity map 4 GiB: PML4[0] -> PDPT, PDPT[0..3] -> four PDs of 2 MiB pages.
        movl $pml4, %edi
        movl $pdpt, %eax
        orl $3, %eax
        movl %eax, (%edi)
        movl $pdpt, %edi
        movl $pds, %eax
        orl $3, %eax
        movl $4, %ecx
5:      movl %eax, (%edi)
        addl $4096, %eax
        addl $8, %edi
        loop 5b
        movl $pds, %edi
        xorl %eax, %eax             // physical address bits 31..0
        xorl %edx, %edx             // bits 63..32 of the entry
        movl $2048, %ecx
6:      movl %eax, %esi
        orl $0x83, %esi             // present, writable, 2 MiB
        movl %esi, (%edi)
        movl %edx, 4(%edi)
        addl $0x200000, %eax
        addl $8, %edi
        loop 6b

        movl %cr4, %eax
        orl $0x20, %eax
        movl %eax, %cr4
        movl $pml4, %eax
        movl %eax, %cr3
        movl $0xC0000080, %ecx
        rdmsr
        orl $0x100, %eax
        wrmsr
        movl %cr0, %eax
        orl $0x80000001, %eax
        movl %eax, %cr0
        lgdt gdtr
        ljmp $0x10, $long_mode

        .code64
long_mode:
        movl $0x18, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl $0x7000, %esp          // a small stack in low memory
        movl cmdline(%rip), %esi    // zero-extended
        movl entry(%rip), %eax
        movq $0xDEADBEEF, %rdi      // nothing else is promised
        jmp *%rax

        .code32
fail:
        movb $0x7F, %al             // exit status (0x7F << 1) | 1
        outb %al, $0xF4
        hlt
        jmp fail

        .data
        .balign 8
gdt:
        .quad 0
        .quad 0
        .quad 0x00AF9A000000FFFF    // 0x10 code, 64-bit
        .quad 0x00CF92000000FFFF    // 0x18 data
gdt_end:
gdtr:
        .word gdt_end - gdt - 1
        .quad gdt
cmdline:
        .long 0
entry:
        .long 0

        .bss
        .balign 4096
pml4:   .space 4096
pdpt:   .space 4096
pds:    .space 4096 * 4
shim_stack:
        .space 4096
shim_stack_top:
