import Interpreter
import VMM

/// The `interp` engine as the VMM's `Engine`: one `InterpreterVirtualCPU` (the X86 model, host
/// time base) over the machine's memory, with the VMM's userspace PIC and PIT.
final class InterpreterEngine: Engine {
  let name = "interp"

  func makeMachine(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> EngineMachine {
    guard options.interruptController == .user else {
      throw EngineError("the interp engine has no in-kernel interrupt controller (use --irqchip user)")
    }
    return EngineMachine(vcpu: InterpreterVirtualCPU(memory: memory))
  }
}
