import Interpreter
import KVMEngine
import VMM

/// What one engine did with one corpus guest.
struct CorpusRun {
  /// The engine and its options, e.g. "interp --deterministic".
  let engineName: String
  let output: String
  let status: Int32
  let reason: StopReason
  let deviceLog: [String]

  /// The stop reason without the register dump (which legitimately differs between engines).
  var reasonSummary: String {
    switch reason {
    case .shutdown(let why, _): return "shutdown(\(why))"
    case .haltedForever: return "haltedForever"
    case .internalError: return "internalError"
    default: return reason.description
    }
  }
}

/// Boots `binary` at 0x10000 in ring 0 with SmallGuestBoot, the corpus test devices registered,
/// and runs it to the end on `engine`.
func runCorpusGuest(_ binary: [UInt8], on engine: any Engine, label: String) throws -> CorpusRun {
  let memory = try GuestMemory(ramSize: 8 << 20)
  try memory.write(0x10000, bytes: binary)
  let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
  let output = OutputBuffer()
  let vm = try Machine(
    memory: memory, boot: boot, engine: engine,
    configuration: corpusConfiguration(output))
  let log = AccessLog()
  try vm.portBus.register(LatchPort(log: log), ports: LatchPort.port...LatchPort.port)
  try vm.portBus.register(StackPort(log: log), ports: StackPort.port...StackPort.port)
  try vm.mmioBus.register(RegisterFile(log: log), base: RegisterFile.base, size: RegisterFile.size)
  let outcome = vm.run()
  return CorpusRun(
    engineName: label, output: output.text, status: outcome.exitStatus, reason: outcome.reason,
    deviceLog: log.entries)
}

/// The corpus machine: console captured, no fw_cfg (the corpus's test devices use its ports).
func corpusConfiguration(_ output: OutputBuffer) -> MachineConfiguration {
  var configuration = MachineConfiguration(consoleCapture: { output.append($0) }, timeoutSeconds: 20)
  configuration.firmwareConfigurationDevice = false
  return configuration
}
