import CNative
import X86

/// Runs programs on the X86 model in 64-bit user mode, from the same state as the native runner.
public final class ModelRunner {
  private let memory = SandboxMemory()
  private let cpu: CPU
  /// Instructions (REP iterations count one each) before a run is declared endless.
  public var stepLimit = 20_000
  /// Whether the model runs cached instructions through its fast handlers (see `CPU.fastPathEnabled`).
  public var fastPath: Bool {
    get { cpu.fastPathEnabled }
    set { cpu.fastPathEnabled = newValue }
  }

  public init() {
    cpu = CPU(model: .host64, memory: memory)
  }

  /// Runs `code` from `initial`; stops at the INT3 padding after the code, at an exception, or at
  /// an access outside the code page and sandbox (reported as #PF: the native side has no memory there).
  public func run(code: [UInt8], initial: MachineState) -> RunResult {
    memory.load(code: code, sandbox: initial.sandbox)
    cpu.configureFlatUser64()
    cpu.reportExceptions = true
    cpu.invalidateTLB()
    for i in 0..<16 { cpu.state.setGPR(i, initial.gpr[i]) }
    cpu.state.rip = CN_CODE_ADDR
    cpu.state.rflags = (initial.rflags & 0x0CD5) | 0x202
    let end = CN_CODE_ADDR + UInt64(code.count)
    var outcome = RunOutcome.other("model step limit (\(stepLimit)) reached")
    for _ in 0..<stepLimit {
      let rip = cpu.state.rip
      if rip >= end, memory.codeByte(at: rip) == 0xCC {
        outcome = .completed
        break
      }
      // One instruction through `run`, the engines' entry point: a cached fast form runs in the
      // page-local fast loop, anything else through `step`'s path.
      let event = cpu.run(budget: 1)
      if case .budgetExhausted = event { continue }
      switch event {
      case .exception(let vector, let errorCode):
        outcome = .fault(vector: Int(vector), errorCode: UInt64(errorCode ?? 0))
      case .mmioRead(let address, _), .mmioWrite(let address, _, _):
        _ = address
        outcome = .fault(vector: 14, errorCode: 0)
      default:
        outcome = .other("model event \(event)")
      }
      break
    }
    let state = MachineState(
      gpr: (0..<16).map { cpu.state.gpr($0) }, rip: cpu.state.rip, rflags: cpu.state.rflags,
      sandbox: memory.sandboxBytes())
    return RunResult(outcome: outcome, state: state)
  }
}
