import Testing
import X86

/// The TSS T bit: a task switch into a 32-bit TSS with T set raises #DB (DR6.BT) before the new
/// task's first instruction; without T the new task just runs.
@Suite struct TaskDebugTrapTests {
  typealias PM = ProtectedModeFuzzTests

  /// A 32-bit protected-mode CPU at 0x08:0x10000 running `jmp far 0x38:0` into the task whose TSS
  /// is at 0x3100 (EIP 0x10100: nop), with #DB through an interrupt gate to 0x10800 (hlt).
  func makeTaskSwitch(trapBit: Bool) throws -> (CPU, TestRAM) {
    let ram = TestRAM(size: 1 << 21)
    let cpu = CPU(model: .host64, memory: ram)
    for (i, d) in PM.fixedGDT.enumerated() {
      ram.bytes.storeBytes(of: d, toByteOffset: 0x1000 + 8 * i, as: UInt64.self)
    }
    let debugGate = PM.gate(selector: 0x08, offset: 0x10800, access: 0x8E)
    ram.bytes.storeBytes(of: debugGate, toByteOffset: 0x2000 + 8 * 1, as: UInt64.self)
    for (offset, value) in [
      (0x20, 0x10100), (0x24, 0x2), (0x38, 0x9000), (0x48, 0x10), (0x4C, 0x08), (0x50, 0x10),
      (0x54, 0x10), (0x64, trapBit ? 1 : 0),
    ] {
      ram.bytes.storeBytes(of: UInt32(value), toByteOffset: 0x3100 + offset, as: UInt32.self)
    }
    ram.load([0xEA, 0, 0, 0, 0, 0x38, 0], at: 0x10000)
    ram.load([0x90], at: 0x10100)
    ram.load([0xF4], at: 0x10800)
    cpu.resetReal(cs: 0, ip: 0)
    cpu.reportExceptions = false
    try cpu.system.loadDescriptorTable(.gdt, limit: 0x57, base: 0x1000, operandSize: 4)
    try cpu.system.loadDescriptorTable(.idt, limit: 0x7FF, base: 0x2000, operandSize: 4)
    _ = try cpu.system.movToCR(0, CR0.pe | CR0.et)
    _ = try cpu.system.farJump(selector: 0x08, offset: 0x10000, operandSize: 4, returnRIP: 0)
    for s in [SegmentRegister.ss, .ds, .es] { try cpu.system.loadSegment(s, 0x10) }
    try cpu.system.ltr(0x28)
    cpu.state.setGPR(4, 0x8000)
    return (cpu, ram)
  }

  @Test func theTBitTrapsBeforeTheNewTasksFirstInstruction() throws {
    let (cpu, ram) = try makeTaskSwitch(trapBit: true)
    #expect(cpu.step() == nil)  // JMP to the task
    #expect(cpu.state.segment(.tr).selector == 0x38 && cpu.state.rip == 0x10100)
    #expect(cpu.step() == nil)  // #DB delivered instead of the NOP
    #expect(cpu.state.rip == 0x10800)
    let dr6 = cpu.state[offset: CPUStateLayout.debugRegisters + 6 * 8]
    #expect(dr6 & DebugStatus.taskSwitch != 0)
    #expect(ram.bytes.load(fromByteOffset: Int(cpu.state.gpr(4)), as: UInt32.self) == 0x10100)  // return EIP
  }

  @Test func withoutTheTBitTheTaskJustRuns() throws {
    let (cpu, _) = try makeTaskSwitch(trapBit: false)
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    #expect(cpu.state.rip == 0x10101)
  }
}
