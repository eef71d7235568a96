import Interpreter
import VMM

/// The interp engine for the firmware tests (`deterministic`: guest time follows the instruction
/// count, as with `--deterministic`).
func interpreterEngine(deterministic: Bool = false) -> any Engine {
  InterpreterEngine(deterministic: deterministic)
}
