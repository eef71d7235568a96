import VMM
import X86

/// The `interp` engine as the VMM sees it: builds an `InterpreterVirtualCPU` over guest memory.
public final class InterpreterEngine: Engine {
  public let name = "interp"
  /// Guest time follows the instruction count (`--deterministic`): same guest, same output.
  public let deterministic: Bool
  public let model: CPUModel

  public init(deterministic: Bool = false, model: CPUModel = .host64) {
    self.deterministic = deterministic
    self.model = model
  }

  public func makeMachine(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> EngineMachine {
    guard options.interruptController == .user else {
      throw EngineError("the interp engine has no in-kernel interrupt controller: use --irqchip user")
    }
    let vcpu = InterpreterVirtualCPU(memory: memory, model: model, deterministic: deterministic)
    if let identity = options.cpu { vcpu.present(identity) }
    return EngineMachine(vcpu: vcpu, clock: deterministic ? vcpu.clock as? InstructionClock : nil)
  }
}
