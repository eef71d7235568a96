import Testing

@testable import X86

/// CRC32 (SSE4.2) against the published check value of CRC-32C; the host differential test
/// (`sse4` class) compares every operand size with the host CPU.
@Suite struct CRC32Tests {
  /// CRC-32C of "123456789" with the customary inversion before and after is 0xE3069283.
  @Test func crc32ComputesCRC32C() {
    // crc32 eax, byte ptr [rbx]; inc rbx; dec ecx; jnz back
    let (cpu, ram) = makeCPU64([0xF2, 0x0F, 0x38, 0xF0, 0x03, 0x48, 0xFF, 0xC3, 0xFF, 0xC9, 0x75, 0xF4])
    ram.load(Array("123456789".utf8), at: 0x2000)
    cpu.state.setGPR(Reg.rax, 0xFFFF_FFFF)
    cpu.state.setGPR(Reg.rbx, 0x2000)
    cpu.state.setGPR(Reg.rcx, 9)
    for _ in 0..<36 { #expect(cpu.step() == nil) }
    #expect(cpu.state.gpr(Reg.rax) ^ 0xFFFF_FFFF == 0xE306_9283)
  }
}
