import Interpreter
import VMM
import X86

/// The `dbt` engine: the X86 model's vCPUs with a dynamic binary translator each
/// (`DynamicTranslator`), which turns guest code into host x86-64 code at run time; the
/// interpreter runs what the translator leaves. The VMM, devices and exit model are those of
/// `interp`, so a guest cannot tell the two apart except by speed.
public final class TranslatorEngine: Engine {
  public let name = "dbt"
  /// Guest time follows the instruction count (`--deterministic`): same guest, same output.
  public let deterministic: Bool
  public let model: CPUModel
  /// Bytes of host code each vCPU's translator may hold before it starts over.
  public let codeBufferBytes: Int

  public init(deterministic: Bool = false, model: CPUModel = .host64, codeBufferBytes: Int = 32 << 20) {
    self.deterministic = deterministic
    self.model = model
    self.codeBufferBytes = codeBufferBytes
  }

  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard options.interruptController == .user else {
      throw EngineError("the dbt engine has no in-kernel interrupt controller: use --irqchip user")
    }
    let bytes = codeBufferBytes
    return InterpreterVM(
      memory: memory, model: model, deterministic: deterministic, identity: options.cpu, engineName: name,
      makeTranslator: { () throws(EngineError) -> any BlockExecutor in
        do throws(TranslatorError) {
          return try DynamicTranslator(codeBytes: bytes)
        } catch {
          throw EngineError("dbt: \(error.description)")
        }
      })
  }
}
