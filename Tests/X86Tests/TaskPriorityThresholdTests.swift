import Testing

@testable import X86

/// `CPU.taskPriorityThreshold` (VMX's TPR threshold for the embedder's local APIC): a MOV to CR8
/// that leaves CR8 below it retires, then `step` reports `.taskPriorityLowered`; at or above it,
/// or with the threshold 0, the MOV is an ordinary instruction.
@Suite struct TaskPriorityThresholdTests {
  /// mov cr8, rax; mov cr8, rbx; nop at CPL 0 in 64-bit mode.
  static func cpu() -> CPU {
    let (cpu, _) = makeCPU64([0x44, 0x0F, 0x22, 0xC0, 0x44, 0x0F, 0x22, 0xC3, 0x90])
    cpu.state.cpl = 0
    return cpu
  }

  @Test func aMOVToCR8BelowTheThresholdEndsTheStep() {
    let cpu = Self.cpu()
    cpu.taskPriorityThreshold = 4
    cpu.state.setGPR(0, 4)  // rax: at the threshold
    cpu.state.setGPR(3, 3)  // rbx: below it
    #expect(cpu.step() == nil)
    #expect(cpu.state[offset: CPUStateLayout.cr8] == 4)
    #expect(cpu.step() == .taskPriorityLowered)
    #expect(cpu.state[offset: CPUStateLayout.cr8] == 3)
    #expect(cpu.state.rip == 0x1008)  // retired
  }

  @Test func withoutAThresholdCR8WritesReportNothing() {
    let cpu = Self.cpu()
    cpu.state.setGPR(0, 15)
    cpu.state.setGPR(3, 0)
    #expect(cpu.step() == nil)
    #expect(cpu.step() == nil)
    #expect(cpu.state[offset: CPUStateLayout.cr8] == 0)
  }
}
