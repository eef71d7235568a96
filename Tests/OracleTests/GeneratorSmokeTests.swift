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

/// The native runner in compatibility mode: it installs the LDT, enters 16-bit code through an
/// LDT code segment, loads the data selectors, and reports them with the fault error codes the
/// CPU pushed; the model agrees on each case.
@Test(.requires(.nativeX86Linux, .compatibilityMode)) func nativeRunnerRunsCompatibilityModeCode() throws {
  let runner = try NativeRunner()
  let model = try ModelRunner(vendor: HostCPU.detect().vendor)
  var ldt = [LDTEntry](repeating: .emptyEntry, count: 16)
  ldt[0] = LDTEntry(base: UInt32(CN_CODE_ADDR), limit: 0xFFF, is32Bit: false, contents: .code)
  ldt[2] = LDTEntry(base: UInt32(CN_SANDBOX_ADDR), limit: 0x1FFF, is32Bit: false, contents: .data)
  ldt[3] = LDTEntry(base: UInt32(CN_SANDBOX_ADDR), limit: 0x1FFF, is32Bit: true, contents: .data, notPresent: true)
  let state = MachineState(
    gpr: Array(repeating: 0, count: 16), rip: 0, rflags: 2,
    sandbox: Array(repeating: 0x5A, count: Int(CN_SANDBOX_SIZE)), segments: [0x2B, 0x07, 0x17, 0x2B, 0, 0x2B],
    ldt: ldt)
  func both(_ code: [UInt8]) throws -> (RunResult, RunResult) {
    (try runner.run(code: code, initial: state), model.run(code: code, initial: state))
  }
  // mov ax, 0x17; mov ds, ax; mov bx, [0x10]: DS is the 16-bit LDT segment at the sandbox.
  var (n, m) = try both([0xB8, 0x17, 0x00, 0x8E, 0xD8, 0x8B, 0x1E, 0x10, 0x00])
  #expect(n.outcome == .completed && n.state.rip == 9)
  #expect(n.state.segments == [0x2B, 0x07, 0x17, 0x17, 0, 0x2B])
  #expect(n.state.gpr[3] & 0xFFFF == 0x5A5A)
  #expect(StateComparison.differences(native: n, model: m, undefinedFlags: 0).isEmpty)
  // mov ax, 0x87; mov es, ax: index 16 is past the LDT's limit: #GP(0x84).
  (n, m) = try both([0xB8, 0x87, 0x00, 0x8E, 0xC0])
  #expect(n.outcome == .fault(vector: 13, errorCode: 0x84))
  #expect(StateComparison.differences(native: n, model: m, undefinedFlags: 0).isEmpty)
  // mov ax, 0x1F; mov ss, ax: not present: #SS(0x1C).
  (n, m) = try both([0xB8, 0x1F, 0x00, 0x8E, 0xD0])
  #expect(n.outcome == .fault(vector: 12, errorCode: 0x1C))
  #expect(StateComparison.differences(native: n, model: m, undefinedFlags: 0).isEmpty)
  // mov word [0x1FFF], 0: past the 16-bit data segment's limit after loading it into DS: #GP(0).
  (n, m) = try both([0xB8, 0x17, 0x00, 0x8E, 0xD8, 0xC7, 0x06, 0xFF, 0x1F, 0, 0])
  #expect(n.outcome == .fault(vector: 13, errorCode: 0))
  #expect(StateComparison.differences(native: n, model: m, undefinedFlags: 0).isEmpty)
}
