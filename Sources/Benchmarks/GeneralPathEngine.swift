import Interpreter
import VMM
import X86

/// The `interp` engine with the X86 model's fast path off (`CPU.fastPathEnabled = false`): every
/// instruction through the general decode-and-execute path. Not a user-facing engine; it exists to
/// measure what the general path alone does, next to the default interpreter, in the same run.
public final class GeneralPathEngine: Engine {
  public let name = "interp"
  private let interpreter = InterpreterEngine()

  public init() {}

  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard let vm = try interpreter.createVM(memory: memory, options: options) as? InterpreterVM else {
      throw EngineError("the interp engine did not make an InterpreterVM")
    }
    return GeneralPathVM(vm)
  }
}

/// An `InterpreterVM` whose vCPUs take the general path only.
private final class GeneralPathVM: EngineVM {
  private let vm: InterpreterVM
  init(_ vm: InterpreterVM) { self.vm = vm }

  var engineInterruptSink: (any InterruptSink)? { vm.engineInterruptSink }
  var clock: (any InstructionDrivenClock)? { vm.clock }

  func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    let vcpu = try vm.createInterpreterVCPU(index: index)
    vcpu.cpu.fastPathEnabled = false
    return vcpu
  }
}
