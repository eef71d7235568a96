import CNative
import TestHostSupport
import Testing

@testable import Oracles

/// A state with all-zero registers and sandbox, and `fx` as its FXSAVE64 image.
private func fpState(fx: [UInt8] = MachineState.defaultFX) -> MachineState {
  MachineState(
    gpr: Array(repeating: 0, count: 16), rip: CN_CODE_ADDR, rflags: 2,
    sandbox: Array(repeating: 0, count: Int(CN_SANDBOX_SIZE)), fx: fx)
}

/// Stores `bytes` as XMM register `index` of the image `fx`.
private func setXMM(_ index: Int, _ bytes: [UInt8], in fx: inout [UInt8]) {
  fx.replaceSubrange(FXLayout.xmm(index)..<FXLayout.xmm(index) + 16, with: bytes)
}

/// The native runner loads the test's XMM registers and MXCSR with FXRSTOR64 and reports the
/// final ones: PXOR xmm1, xmm2 leaves the XOR in XMM1 and XMM2 as it was.
@Test(.requires(.nativeX86Linux)) func nativeRunnerCarriesXMMRegistersInAndOut() throws {
  let runner = try NativeRunner()
  let a: [UInt8] = (0..<16).map { UInt8(truncatingIfNeeded: 0x11 &* $0 &+ 0x0F) }
  let b: [UInt8] = (0..<16).map { UInt8(truncatingIfNeeded: 0xA5 ^ ($0 << 3)) }
  var fx = MachineState.defaultFX
  setXMM(1, a, in: &fx)
  setXMM(2, b, in: &fx)
  // pxor xmm1, xmm2
  let result = try runner.run(code: [0x66, 0x0F, 0xEF, 0xCA], initial: fpState(fx: fx))
  #expect(result.outcome == .completed)
  #expect(result.state.rip == CN_CODE_ADDR + 4)
  #expect(result.state.fx.count == 512)
  #expect(result.state.xmmBytes(1).map(Array.init) == zip(a, b).map { $0 ^ $1 })
  #expect(result.state.xmmBytes(2).map(Array.init) == b)
  #expect(result.state.mxcsr == 0x1F80)
  // The x87 control word came through too.
  #expect(result.state.fx[FXLayout.fcw] == 0x7F && result.state.fx[FXLayout.fcw + 1] == 0x03)
}

/// LDMXCSR in the test code shows in the final image; the next run starts from its own image
/// again, and an empty initial image means the default one.
@Test(.requires(.nativeX86Linux)) func nativeRunnerReportsTheFinalMXCSR() throws {
  let runner = try NativeRunner()
  var state = fpState()
  state.sandbox[0x100] = 0x80
  state.sandbox[0x101] = 0x3F
  state.gpr[0] = CN_SANDBOX_ADDR + 0x100
  // ldmxcsr [rax]
  let loaded = try runner.run(code: [0x0F, 0xAE, 0x10], initial: state)
  #expect(loaded.outcome == .completed)
  #expect(loaded.state.mxcsr == 0x3F80)
  state.fx = []
  let next = try runner.run(code: [0x90], initial: state)
  #expect(next.outcome == .completed)
  #expect(next.state.mxcsr == 0x1F80)
  // MXCSR bits the host reserves are cleared from the initial image rather than faulting in
  // FXRSTOR64.
  state.fx = MachineState.defaultFX
  state.fx.replaceSubrange(FXLayout.mxcsr..<FXLayout.mxcsr + 4, with: [0x80, 0x1F, 0xFF, 0xFF])
  let sanitized = try runner.run(code: [0x90], initial: state)
  #expect(sanitized.outcome == .completed)
  // The bits that stay are those the host's MXCSR_MASK (in the final image) allows.
  let reported = (0..<4).reduce(UInt32(0)) {
    $0 | UInt32(sanitized.state.fx[FXLayout.mxcsrMask + $1]) << (8 * $1)
  }
  let mask = reported == 0 ? 0xFFBF : reported
  #expect(sanitized.state.mxcsr == 0xFFFF_1F80 & mask)
}

/// The image is loaded and reported in compatibility mode too (32-bit code through the GDT's
/// selector 0x23), and after a fault as after a completed run.
@Test(.requires(.nativeX86Linux, .compatibilityMode)) func nativeRunnerCarriesXMMInCompatibilityMode() throws {
  let runner = try NativeRunner()
  var fx = MachineState.defaultFX
  setXMM(1, Array(repeating: 0x0F, count: 16), in: &fx)
  setXMM(2, Array(repeating: 0x3C, count: 16), in: &fx)
  var state = fpState(fx: fx)
  state.segments = [0x2B, 0x23, 0x2B, 0x2B, 0, 0]
  state.ldt = Array(repeating: .emptyEntry, count: Int(CN_LDT_ENTRIES))
  state.gpr[4] = CN_SANDBOX_ADDR + 0x1000
  // pxor xmm1, xmm2
  let completed = try runner.run(code: [0x66, 0x0F, 0xEF, 0xCA], initial: state)
  #expect(completed.outcome == .completed)
  #expect(completed.state.xmmBytes(1).map(Array.init) == Array(repeating: 0x33, count: 16))
  #expect(completed.state.xmmBytes(2).map(Array.init) == Array(repeating: 0x3C, count: 16))
  // pxor xmm1, xmm2; ud2: the XOR is in the image the fault reports.
  let faulted = try runner.run(code: [0x66, 0x0F, 0xEF, 0xCA, 0x0F, 0x0B], initial: state)
  #expect(faulted.outcome == .fault(vector: 6, errorCode: 0))
  #expect(faulted.state.xmmBytes(1).map(Array.init) == Array(repeating: 0x33, count: 16))
  #expect(faulted.state.mxcsr == 0x1F80)
}

/// XMM registers and MXCSR are compared when both sides carry an image, and skipped when either
/// does not.
@Test func stateComparisonComparesXMMAndMXCSR() {
  var fx = MachineState.defaultFX
  setXMM(3, Array(0..<16), in: &fx)
  let native = RunResult(outcome: .completed, state: fpState(fx: fx))
  var other = fx
  other[FXLayout.xmm(3) + 15] = 0xEE
  other[FXLayout.mxcsr + 1] = 0x3F
  let model = RunResult(outcome: .completed, state: fpState(fx: other))
  let differences = StateComparison.differences(native: native, model: model, undefinedFlags: 0)
  #expect(differences.map(\.field) == ["xmm3", "mxcsr"])
  #expect(differences.first?.native == "0x0f0e0d0c0b0a09080706050403020100")
  #expect(differences.first?.model == "0xee0e0d0c0b0a09080706050403020100")
  #expect(differences.last?.native == "0x1f80" && differences.last?.model == "0x3f80")
  let unknown = RunResult(outcome: .completed, state: fpState(fx: []))
  #expect(StateComparison.differences(native: native, model: unknown, undefinedFlags: 0).isEmpty)
  #expect(StateComparison.differences(native: native, model: native, undefinedFlags: 0).isEmpty)
}
