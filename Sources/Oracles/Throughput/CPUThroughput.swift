import CNative
import Dispatch
import X86

/// Speed of the X86 model against the host CPU on the same user-level, CPU-bound code: an integer
/// hash over a 4 KiB buffer (load, multiply, xor, rotate, add, store, loop), run natively by the
/// difftest's native runner and on the model in flat 64-bit user mode from identical state.
/// Both runs must end with identical registers and buffer, so the figure is for correct execution.
///
/// The model runs the loop twice: with its pre-resolved fast handlers (the figure engines get) and
/// with every instruction on the general `execute` path, to show what the fast path buys.
public struct CPUThroughput: Sendable {
  public var instructions: UInt64
  public var modelSeconds: Double
  /// The same run with `CPU.fastPathEnabled` off.
  public var generalPathSeconds: Double
  public var nativeSeconds: Double
  /// Millions of guest instructions per second on the model.
  public var modelMIPS: Double { Double(instructions) / modelSeconds / 1e6 }
  public var generalPathMIPS: Double { Double(instructions) / generalPathSeconds / 1e6 }
  public var nativeMIPS: Double { Double(instructions) / nativeSeconds / 1e6 }
  /// How many times slower the model is than the host.
  public var slowdown: Double { modelSeconds / nativeSeconds }

  /// The workload (see the type's comment); `rcx` holds the number of passes over the buffer.
  static let code: [UInt8] = [
    0x48, 0x89, 0xF7,  // outer: mov rdi, rsi
    0xBA, 0x00, 0x02, 0x00, 0x00,  // mov edx, 512
    0x48, 0x8B, 0x07,  // inner: mov rax, [rdi]
    0x49, 0x0F, 0xAF, 0xC0,  // imul rax, r8
    0x48, 0x31, 0xC3,  // xor rbx, rax
    0x48, 0xC1, 0xC3, 0x0D,  // rol rbx, 13
    0x48, 0x01, 0xD3,  // add rbx, rdx
    0x48, 0x89, 0x1F,  // mov [rdi], rbx
    0x48, 0x83, 0xC7, 0x08,  // add rdi, 8
    0xFF, 0xCA,  // dec edx
    0x75, 0xE4,  // jnz inner
    0x48, 0xFF, 0xC9,  // dec rcx
    0x75, 0xD7,  // jnz outer
    0xCC,  // int3
  ]
  /// Instructions retired per pass over the buffer.
  static let instructionsPerPass: UInt64 = 2 + 512 * 9 + 2

  public enum Failure: Error, CustomStringConvertible {
    case native(String)
    case model(String)
    case disagree(String)
    public var description: String {
      switch self {
      case .native(let s): return "native run failed: \(s)"
      case .model(let s): return "model run failed: \(s)"
      case .disagree(let s): return "model and host disagree: \(s)"
      }
    }
  }

  /// Runs about `instructions` instructions (rounded to whole passes) on both sides.
  public static func measure(instructions target: UInt64) throws -> CPUThroughput {
    let passes = max(1, target / instructionsPerPass)
    let total = passes * instructionsPerPass + 1
    var gpr = [UInt64](repeating: 0, count: 16)
    gpr[1] = passes  // rcx
    gpr[4] = CN_SANDBOX_ADDR + UInt64(CN_SANDBOX_SIZE) - 64  // rsp
    gpr[6] = CN_SANDBOX_ADDR  // rsi
    gpr[8] = 0x9E37_79B9_7F4A_7C15  // r8
    var sandbox = [UInt8](repeating: 0, count: Int(CN_SANDBOX_SIZE))
    for i in 0..<sandbox.count { sandbox[i] = UInt8(truncatingIfNeeded: i &* 131 &+ 7) }
    let initial = MachineState(gpr: gpr, rip: CN_CODE_ADDR, rflags: 0x202, sandbox: sandbox)

    // Native.
    let native = try NativeRunner()
    let nativeStart = DispatchTime.now().uptimeNanoseconds
    let nativeResult = try native.run(code: code, initial: initial, timeoutMilliseconds: 600_000)
    let nativeSeconds = Double(DispatchTime.now().uptimeNanoseconds - nativeStart) / 1e9
    guard nativeResult.outcome == .completed else { throw Failure.native("\(nativeResult.outcome)") }

    // Model, with and without the fast path; each run must reproduce the host's result.
    func runModel(fastPath: Bool) throws -> Double {
      let memory = SandboxMemory()
      memory.load(code: code, sandbox: sandbox)
      let cpu = CPU(model: .host64, memory: memory)
      cpu.configureFlatUser64()
      cpu.fastPathEnabled = fastPath
      for i in 0..<16 { cpu.state.setGPR(i, gpr[i]) }
      cpu.state.rip = CN_CODE_ADDR
      let start = DispatchTime.now().uptimeNanoseconds
      let event = cpu.run(budget: total + 16)
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
      guard case .exception(vector: 3, _) = event else { throw Failure.model("stopped with \(event)") }
      for i in 0..<16 where cpu.state.gpr(i) != nativeResult.state.gpr[i] {
        throw Failure.disagree(
          "\(MachineState.registerNames[i]) = 0x\(String(cpu.state.gpr(i), radix: 16)) on the model"
            + "\(fastPath ? "" : " (general path)"), 0x\(String(nativeResult.state.gpr[i], radix: 16)) natively")
      }
      guard memory.sandboxBytes() == nativeResult.state.sandbox else {
        throw Failure.disagree("buffer contents differ\(fastPath ? "" : " (general path)")")
      }
      return seconds
    }
    let modelSeconds = try runModel(fastPath: true)
    let generalPathSeconds = try runModel(fastPath: false)
    return CPUThroughput(
      instructions: total, modelSeconds: modelSeconds, generalPathSeconds: generalPathSeconds,
      nativeSeconds: nativeSeconds)
  }
}
