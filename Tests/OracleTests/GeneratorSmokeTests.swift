import CNative
import TestHostSupport
import Testing

@testable import Oracles

/// The native runner itself: generated programs run on the host without timeouts or a dead child,
/// and faults come back with the right vector.
@Test(.requires(.nativeX86Linux)) func nativeRunnerRunsGeneratedProgramsAndReportsFaults() throws {
  let host = HostCPU.detect()
  let usable = host.usableClasses(InstructionClass.allCases)
  let runner = try NativeRunner()
  var generator = ProgramGenerator(classes: usable.classes, features: host.features, seed: 1)
  for _ in 0..<500 {
    let state = generator.initialState()
    let program = generator.program(count: 4)
    let result = try runner.run(code: program.code, initial: state)
    if case .other = result.outcome { Issue.record("native run failed: \(result.outcome)") }
  }
  var state = generator.initialState()
  state.gpr[1] = 0
  // xor edx, edx; div rcx -> #DE at the DIV
  let divide = try runner.run(code: [0x31, 0xD2, 0x48, 0xF7, 0xF1], initial: state)
  #expect(divide.outcome == .fault(vector: 0, errorCode: 0))
  #expect(divide.state.rip == CN_CODE_ADDR + 2)
  // ud2
  let ud = try runner.run(code: [0x0F, 0x0B], initial: state)
  #expect(ud.outcome == .fault(vector: 6, errorCode: 0))
  // add rax, 1 completes at the INT3 after it
  let add = try runner.run(code: [0x48, 0x83, 0xC0, 0x01], initial: state)
  #expect(add.outcome == .completed)
  #expect(add.state.gpr[0] == state.gpr[0] &+ 1)
  #expect(add.state.rip == CN_CODE_ADDR + 4)
}
