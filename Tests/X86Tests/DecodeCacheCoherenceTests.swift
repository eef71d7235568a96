import Testing
import X86

/// Writes that do not go through an instruction's own store (interrupt frames, TSS and descriptor
/// updates, accessed/dirty bits: the system layer and the page walker) still invalidate decoded
/// instructions on the page they hit.
@Suite struct DecodeCacheCoherenceTests {
  @Test func aSystemLayerWriteReachesCachedCode() throws {
    // mov al, 1 at 0000:0100 in real mode (linear == physical, no paging).
    let (cpu, _) = makeCPUReal(.host64, [0xB0, 0x01])
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) & 0xFF == 1)
    // The system layer rewrites the immediate, as an interrupt frame pushed over code would.
    try cpu.system.memory.writeLinear(0x101, size: 1, value: 5, supervisor: true)
    cpu.state.rip = 0x100
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) & 0xFF == 5)
  }

  @Test func aWriteSpanningTwoPagesReachesCodeOnTheSecondPage() throws {
    // mov al, 1 at 0x0FFE (too close to the page end to be cached) and mov cl, 2 at 0x1000 (cached).
    let (cpu, ram) = makeCPUReal(.host64, [])
    ram.load([0xB0, 0x01, 0xB1, 0x02], at: 0xFFE)
    cpu.state.rip = 0xFFE
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    // One 3-byte system write across the page boundary: both immediates change.
    try cpu.system.memory.writeLinear(0xFFF, size: 3, value: 0x08_B1_07, supervisor: true)
    cpu.state.rip = 0xFFE
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    #expect(cpu.state.gpr(Reg.rax) & 0xFF == 7)
    #expect(cpu.state.gpr(Reg.rcx) & 0xFF == 8)
  }
}
