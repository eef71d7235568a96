import Testing
import VMM

/// Linear-to-physical translation for reports, over page tables the VMM built itself.
@Suite struct GuestPageWalkerTests {
  @Test func translatesThroughSmallGuestBootTables() throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let walker = GuestPageWalker(memory: memory, specialRegisters: boot.specialRegisters)
    #expect(walker.translate(0x10000) == 0x10000)
    #expect(walker.translate(0xD000_1234) == 0xD000_1234)  // 2 MiB pages cover the MMIO hole
    #expect(walker.translate(0x1_0000_0000) == nil)  // beyond the 4 GiB the tables map
    #expect(walker.translate(0xFFFF_8000_0000_0000) == nil)
    try memory.write(0x10000, bytes: [0xF4, 0xEB, 0xFE])
    var regs = Registers()
    regs.rip = 0x10000
    #expect(walker.bytesAtRIP(regs, count: 3) == [0xF4, 0xEB, 0xFE])
    // Near the end of RAM the read stops at the first unbacked byte.
    regs.rip = (2 << 20) - 2
    #expect(walker.bytesAtRIP(regs).count == 2)
  }

  @Test func pagingOffIsIdentityAndRealModeAddsTheCodeBase() throws {
    let memory = try GuestMemory(ramSize: 1 << 20)
    var sregs = SpecialRegisters()
    sregs.cs.base = 0xF0000
    try memory.write(0xFFFF0, bytes: [0xEA, 0x5B, 0xE0])
    let walker = GuestPageWalker(memory: memory, specialRegisters: sregs)
    var regs = Registers()
    regs.rip = 0xFFF0
    #expect(walker.bytesAtRIP(regs, count: 3) == [0xEA, 0x5B, 0xE0])
  }
}
