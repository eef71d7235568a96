import CNative

/// An error from the native runner.
public struct NativeRunnerError: Error, CustomStringConvertible {
  public let description: String
}

/// Runs programs on the host CPU in a CNative child process of its own.
public final class NativeRunner {
  private let runner: OpaquePointer
  private let test = UnsafeMutablePointer<cn_test>.allocate(capacity: 1)
  private let result = UnsafeMutablePointer<cn_result>.allocate(capacity: 1)

  public init() throws(NativeRunnerError) {
    var error: Int32 = 0
    guard let runner = cn_runner_create(&error) else {
      throw NativeRunnerError(description: "cannot start the native runner (errno \(-error))")
    }
    self.runner = runner
    // The child must have mapped its fixed addresses: a NOP must run to the INT3 after it.
    let probe = MachineState(
      gpr: Array(repeating: 0, count: 16), rip: CN_CODE_ADDR, rflags: 2,
      sandbox: Array(repeating: 0, count: Int(CN_SANDBOX_SIZE)))
    let result = try run(code: [0x90], initial: probe)
    guard result.outcome == .completed else {
      throw NativeRunnerError(
        description: "the native runner cannot execute code at \(hex(CN_CODE_ADDR)) (\(result.outcome))")
    }
  }

  deinit {
    cn_runner_destroy(runner)
    test.deallocate()
    result.deallocate()
  }

  /// Runs `code` (placed at CN_CODE_ADDR) from `initial`. A 64-bit state's RIP is ignored (code
  /// starts at CN_CODE_ADDR); a compatibility-mode state (with selectors and an LDT) starts at
  /// CS:RIP with its LDT installed and its selectors loaded. The x87/SSE state starts from
  /// `initial.fx` (`MachineState.defaultFX` if empty; MXCSR bits the host does not support are
  /// cleared) and the result carries the final FXSAVE64 image.
  public func run(code: [UInt8], initial: MachineState, timeoutMilliseconds: Int32 = 2000) throws(NativeRunnerError)
    -> RunResult
  {
    guard code.count <= Int(CN_CODE_MAX) else {
      throw NativeRunnerError(description: "program of \(code.count) bytes exceeds \(CN_CODE_MAX)")
    }
    test.pointee.code_length = UInt32(code.count)
    withUnsafeMutableBytes(of: &test.pointee.code) { $0.copyBytes(from: code) }
    withUnsafeMutableBytes(of: &test.pointee.initial.gpr) { raw in
      for i in 0..<16 { raw.storeBytes(of: initial.gpr[i], toByteOffset: i * 8, as: UInt64.self) }
    }
    let compat = initial.isCompatibility
    test.pointee.mode = compat ? CN_MODE_COMPAT.rawValue : CN_MODE_LONG64.rawValue
    test.pointee.initial.rip = compat ? initial.rip : CN_CODE_ADDR
    withUnsafeMutableBytes(of: &test.pointee.initial.segments) { raw in
      for i in 0..<6 {
        raw.storeBytes(of: i < initial.segments.count ? initial.segments[i] : 0, toByteOffset: i * 2, as: UInt16.self)
      }
    }
    if compat {
      guard initial.ldt.count == Int(CN_LDT_ENTRIES) else {
        throw NativeRunnerError(description: "a compatibility-mode test needs \(CN_LDT_ENTRIES) LDT entries")
      }
      withUnsafeMutableBytes(of: &test.pointee.ldt) { raw in
        let stride = MemoryLayout<cn_ldt_entry>.stride
        for (i, e) in initial.ldt.enumerated() {
          let entry = cn_ldt_entry(
            base: e.base, limit: e.limit, seg_32bit: e.is32Bit ? 1 : 0, contents: e.contents.rawValue,
            read_exec_only: e.readExecOnly ? 1 : 0, limit_in_pages: e.limitInPages ? 1 : 0,
            seg_not_present: e.notPresent ? 1 : 0, useable: 0, empty: e.empty ? 1 : 0, reserved: 0)
          raw.storeBytes(of: entry, toByteOffset: i * stride, as: cn_ldt_entry.self)
        }
      }
    }
    test.pointee.initial.rflags = initial.rflags
    let count = min(initial.sandbox.count, Int(CN_SANDBOX_SIZE))
    cn_test_sandbox(test).update(from: initial.sandbox, count: count)
    let fx = initial.fx.isEmpty ? MachineState.defaultFX : initial.fx
    guard fx.count == FXLayout.size else {
      throw NativeRunnerError(description: "an FXSAVE image has \(FXLayout.size) bytes, not \(fx.count)")
    }
    cn_test_fx(test).update(from: fx, count: FXLayout.size)
    let status = cn_runner_run(runner, test, result, timeoutMilliseconds)
    if status != 0 { throw NativeRunnerError(description: "native runner failed (errno \(-status))") }
    let r = result.pointee
    var gpr = [UInt64](repeating: 0, count: 16)
    withUnsafeBytes(of: r.final.gpr) { raw in
      for i in 0..<16 { gpr[i] = raw.load(fromByteOffset: i * 8, as: UInt64.self) }
    }
    let sandbox = [UInt8](UnsafeBufferPointer(start: cn_result_sandbox(result), count: Int(CN_SANDBOX_SIZE)))
    let finalFX = [UInt8](UnsafeBufferPointer(start: cn_result_fx(result), count: FXLayout.size))
    var segments: [UInt16] = []
    if compat {
      withUnsafeBytes(of: r.final.segments) { raw in
        segments = (0..<6).map { raw.load(fromByteOffset: $0 * 2, as: UInt16.self) }
      }
    }
    let state = MachineState(
      gpr: gpr, rip: r.final.rip, rflags: r.final.rflags, sandbox: sandbox, segments: segments, ldt: initial.ldt,
      fx: finalFX)
    switch cn_outcome(rawValue: UInt32(r.outcome)) {
    case CN_OUTCOME_COMPLETED: return RunResult(outcome: .completed, state: state)
    case CN_OUTCOME_FAULT:
      return RunResult(
        outcome: .fault(vector: Int(r.vector), errorCode: r.error_code), state: state,
        faultAddress: r.vector == 14 ? r.fault_address : 0)
    case CN_OUTCOME_SETUP_FAILED:
      throw NativeRunnerError(description: "the native child cannot install the LDT (modify_ldt: errno \(r.signal))")
    case CN_OUTCOME_TIMEOUT: return RunResult(outcome: .other("native timeout"), state: initial)
    default: return RunResult(outcome: .other("native child crashed"), state: initial)
    }
  }
}
