import VMM
import X86

/// The `interp` engine as the VMM sees it: creates an `InterpreterVM`, whose vCPUs run the X86
/// model over guest memory.
public final class InterpreterEngine: Engine {
  public let name = "interp"
  /// Guest time follows the instruction count (`--deterministic`): same guest, same output.
  public let deterministic: Bool
  public let model: CPUModel

  public init(deterministic: Bool = false, model: CPUModel = .host64) {
    self.deterministic = deterministic
    self.model = model
  }

  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard options.interruptController == .user else {
      throw EngineError("the interp engine has no in-kernel interrupt controller: use --irqchip user")
    }
    return InterpreterVM(memory: memory, model: model, deterministic: deterministic, identity: options.cpu)
  }
}
