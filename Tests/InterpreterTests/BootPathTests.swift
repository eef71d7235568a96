import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// The mode switches a boot loader makes, executed as real instructions by the interpreter:
/// real mode -> LGDT, CR0.PE, far JMP -> 32-bit protected mode -> CR4.PAE, CR3, EFER.LME, CR0.PG
/// -> far JMP -> 64-bit mode -> LIDT, INT 0x80 through the IDT, IRETQ.
@Suite(.requires(.guestToolchain)) struct BootPathTests {
  @Test func realModeToLongModeByInstructions() throws {
    let base: UInt64 = 0x8000
    let code = try GuestAssembler.assemble(
      """
      .code16
        cli
        lgdt [gdtr]
        mov eax, cr0
        or eax, 1
        mov cr0, eax
        .byte 0xEA
        .word prot32
        .word 0x08
      .code32
      prot32:
        mov ax, 0x10
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, cr4
        or eax, 0x20
        mov cr4, eax
        mov eax, 0x10000
        mov cr3, eax
        mov ecx, 0xC0000080
        rdmsr
        or eax, 0x100
        wrmsr
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        .byte 0xEA
        .long long64
        .word 0x18
      .code64
      long64:
        lidt [rip + idtr]
        mov rsp, 0x9008
        int 0x80
        out 0x10, eax
        hlt
      .org 0x200
        mov eax, 0x1234
        iretq
      .balign 8
      gdt:
        .quad 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF, 0x00AF9A000000FFFF
      gdtr:
        .word 31
        .long gdt
      idtr:
        .word 0xFFF
        .quad 0x4000
      """, base: base)
    let memory = try GuestMemory(ramSize: 4 << 20)
    try memory.write(base, bytes: code)
    try memory.write(UInt64(0x11000 | 3), at: 0x10000)  // PML4[0]
    try memory.write(UInt64(0x12000 | 3), at: 0x11000)  // PDPT[0]
    try memory.write(UInt64(0x83), at: 0x12000)  // PD[0]: 2 MiB identity page
    let handler = base + 0x200
    let gateLow = (handler & 0xFFFF) | 0x18 << 16 | UInt64(0x8E) << 40 | ((handler >> 16) & 0xFFFF) << 48
    try memory.write(gateLow, at: 0x4000 + 0x80 * 16)
    try memory.write(UInt64(0), at: 0x4000 + 0x80 * 16 + 8)

    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    var sregs = try vcpu.specialRegisters()
    let real = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 3)
    sregs.cs = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 11)
    (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (real, real, real, real, real)
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    regs.rip = base
    try vcpu.setRegisters(regs)

    #expect(try vcpu.run(budget: 1000) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 0x1234)))
    let s = try vcpu.specialRegisters()
    #expect(s.cs.selector == 0x18 && s.cs.l)
    #expect(s.efer & 0x500 == 0x500)  // LME | LMA
    #expect(s.cr0 & 0x8000_0001 == 0x8000_0001)
  }
}

/// External interrupts in real mode go through the IVT.
@Suite(.requires(.guestToolchain)) struct RealModeInterruptTests {
  @Test func injectedInterruptUsesTheIVTAndReturnsWithIRET() throws {
    let base: UInt64 = 0x7C00
    let code = try GuestAssembler.assemble(
      """
      .code16
        sti
        hlt
        mov al, 0x22
        out 0x11, al
        hlt
      .org 0x80
        mov al, 0x11
        out 0x10, al
        iret
      """, base: base)
    let memory = try GuestMemory(ramSize: 1 << 20)
    try memory.write(base, bytes: code)
    try memory.write(UInt16(base + 0x80), at: 0x08 * 4)  // IVT[8]: offset
    try memory.write(UInt16(0), at: 0x08 * 4 + 2)  // segment
    let vcpu = InterpreterVirtualCPU(memory: memory, deterministic: true)
    var sregs = try vcpu.specialRegisters()
    let real = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 3)
    sregs.cs = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 11)
    (sregs.ds, sregs.es, sregs.ss, sregs.fs, sregs.gs) = (real, real, real, real, real)
    sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
    try vcpu.setSpecialRegisters(sregs)
    var regs = Registers()
    regs.rip = base
    regs.rsp = 0x7000
    try vcpu.setRegisters(regs)
    #expect(try vcpu.run(budget: 100) == .halt)
    try vcpu.injectInterrupt(vector: 8)
    #expect(try vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0x11)))
    try vcpu.complete(.none)
    #expect(try vcpu.run(budget: 100) == .io(PortAccess(port: 0x11, size: 1, isWrite: true, value: 0x22)))
    #expect(try vcpu.registers().rsp == 0x7000)
  }
}
