import Testing

@testable import X86

/// The long-mode entry path real boot loaders take, driven through `SystemUnit` on paged memory:
/// real mode -> LGDT -> CR0.PE -> far JMP to 32-bit code -> CR4.PAE, CR3, EFER.LME -> CR0.PG
/// (compatibility mode) -> far JMP to 64-bit code -> LIDT -> INT -> IRETQ.
@Suite struct SystemBootPathTests {
  @Test func realModeToLongModeAndAnInterruptRoundTrip() throws {
    let ram = TestRAM()
    func put(_ address: Int, _ value: UInt64) {
      ram.load((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }, at: address)
    }
    put(0x1008, 0x00CF_9A00_0000_FFFF)  // 0x08: code32 (not yet accessed)
    put(0x1010, 0x00CF_9200_0000_FFFF)  // 0x10: data
    put(0x1018, 0x00AF_9A00_0000_FFFF)  // 0x18: code64
    put(0x10000, 0x11000 | 3)  // PML4[0]
    put(0x11000, 0x12000 | 3)  // PDPT[0]
    put(0x12000, 0x0 | 0x83)  // PD[0]: 2 MiB identity page
    let gate = GateDescriptor(offset: 0x5000, selector: 0x18, type: 0xE, dpl: 3)
    put(0x4000 + 0x80 * 16, gate.low)
    put(0x4000 + 0x80 * 16 + 8, gate.high)

    let state = CPUState()
    state.setSegment(.cs, .real(0, code: true))
    state.setSegment(.ss, .real(0))
    let sys = SystemUnit(state: state, memory: ram)
    try sys.loadDescriptorTable(.gdt, limit: 0x1F, base: 0x1000, operandSize: 4)
    #expect(try sys.movToCR(0, CR0.pe | CR0.et))
    #expect(OperatingMode(state) == .protected && state.codeMode == .bits16)
    try sys.farJump(selector: 0x08, offset: 0x2000, operandSize: 2, returnRIP: 0)
    #expect(state.codeMode == .bits32 && state.rip == 0x2000)
    #expect(ram.byte(0x100D) == 0x9B)  // accessed bit set
    try sys.loadSegment(.ss, 0x10)
    try sys.loadSegment(.ds, 0x10)

    try sys.movToCR(4, CR4.pae)
    try sys.movToCR(3, 0x10000)
    try sys.wrmsr(MSRIndex.efer, EFER.lme | EFER.sce | EFER.nxe)
    try sys.movToCR(0, CR0.pe | CR0.pg | CR0.et)
    #expect(state.efer & EFER.lma != 0 && OperatingMode(state) == .compatibility)
    try sys.farJump(selector: 0x18, offset: 0x3000, operandSize: 4, returnRIP: 0)
    #expect(OperatingMode(state) == .long64 && state.codeMode == .bits64)

    try sys.loadDescriptorTable(.idt, limit: 0xFFF, base: 0x4000, operandSize: 8)
    state.setGPR(4, 0x9008)
    state.rflags = 0x202
    #expect(sys.deliver(vector: 0x80, kind: .software(.intN), returnRIP: 0x3002) == .delivered)
    #expect(state.rip == 0x5000 && state.gpr(4) == 0x9000 - 40 && state.rflags == 0x2)
    #expect(ram.qword(0x9000 - 40) == 0x3002 && ram.qword(0x9000 - 32) == 0x18)
    #expect(sys.mmu.tlb.entry(0x4800, kind: .read, user: false) != nil)  // the IDT read went through the TLB
    try sys.iret(operandSize: 8, returnRIP: 0)
    #expect(state.rip == 0x3002 && state.gpr(4) == 0x9008 && state.rflags == 0x202)

    // Turning paging back off needs compatibility mode first.
    #expect(faultOf { () throws(Fault) in _ = try sys.movToCR(0, CR0.pe | CR0.et) } == .gp(0))
  }
}
