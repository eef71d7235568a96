import Foundation
import Interpreter
import Launcher
import StaticTranslator
import Translator
import VMM

/// The two behaviour rows of `trivisor bench bt`, observed by running small 64-bit guests (flat
/// binaries at 0x10000, as `trivisor run --flat-address 0x10000` loads them) on each engine; sbt
/// gets the translation file `trivisor translate` makes for the same binary.
enum BtBehaviourProbes {
  /// Where the probes are loaded.
  static let base: UInt64 = 0x10000

  /// Prints "A", calls f (EBX += 3) 1000 times, patches the immediate of its own next
  /// instruction from 'Y' to 'Z' and prints it, patches f's immediate from 3 to 4 (code the loop
  /// ran a thousand times) and calls f again, jumps through a computed pointer, prints "C\n" and
  /// exits through isa-debug-exit with BL = 3004 & 0xFF (status 121). The same bytes as the
  /// static translator's engine-parity guest (Tests/StaticTranslatorTests).
  static let selfModifying: [UInt8] = [
    0xBA, 0xF8, 0x03, 0x00, 0x00, 0xB0, 0x41, 0xEE, 0xB9, 0xE8, 0x03, 0x00, 0x00, 0x31, 0xDB, 0xE8, 0x37, 0x00, 0x00,
    0x00, 0xFF, 0xC9, 0x75, 0xF7, 0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x5A, 0xB0, 0x59, 0xEE, 0xC6, 0x05, 0x24, 0x00,
    0x00, 0x00, 0x04, 0xE8, 0x1D, 0x00, 0x00, 0x00, 0x48, 0x8D, 0x05, 0x06, 0x00, 0x00, 0x00, 0xFF, 0xE0, 0xFF, 0xFF,
    0xFF, 0xFF, 0xB0, 0x43, 0xEE, 0xB0, 0x0A, 0xEE, 0x89, 0xD8, 0x66, 0xBA, 0xF4, 0x00, 0xEE, 0xF4, 0xEB, 0xFD, 0x83,
    0xC3, 0x03, 0xC3,
  ]

  /// What the self-modifying probe prints and its exit status on a correct CPU.
  static let selfModifyingExpected = (output: "AZC\n", status: Int32(121))

  /// A loop of ADD EBX,7; MOV EAX,[RSI]; ADD EBX,1; DEC ECX; JNZ run 100 times with RSI = 0x10000,
  /// then again with RSI non-canonical: the load raises #GP in the middle of a block the
  /// translators have run a hundred times. With no IDT the fault ends the machine (triple fault),
  /// so the stop's registers show whether the fault was precise: RIP at the load (0x10014), EBX =
  /// 100 * 8 + 7 (the ADD before the load done, the one after not).
  /// Offsets: xor 0x00, mov ecx 0x02, movabs rsi 0x07, loop 0x11, load 0x14, movabs 0x1D, jmp 0x27.
  static let preciseFault: [UInt8] = [
    0x31, 0xDB,  // xor ebx, ebx
    0xB9, 0x64, 0x00, 0x00, 0x00,  // mov ecx, 100
    0x48, 0xBE, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  // movabs rsi, 0x10000
    0x83, 0xC3, 0x07,  // loop: add ebx, 7
    0x8B, 0x06,  // mov eax, [rsi]
    0x83, 0xC3, 0x01,  // add ebx, 1
    0xFF, 0xC9,  // dec ecx
    0x75, 0xF4,  // jnz loop
    0x48, 0xBE, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,  // movabs rsi, 1 << 63
    0xEB, 0xE8,  // jmp loop
  ]

  /// The faulting load's address and EBX at the fault.
  static let preciseFaultExpected = (rip: UInt64(0x10014), rbx: UInt64(807))

  /// Both probes on interp, dbt and sbt.
  static func runAll(timeoutSeconds: Double) -> [BtBenchReport.Behaviour] {
    var rows: [BtBenchReport.Behaviour] = []
    for engine in BtBenchReport.engines {
      rows.append(selfModifyingRow(engine: engine, timeoutSeconds: timeoutSeconds))
    }
    for engine in BtBenchReport.engines {
      rows.append(preciseFaultRow(engine: engine, timeoutSeconds: timeoutSeconds))
    }
    return rows
  }

  /// The self-modifying probe on `engine`: passed when output and status are the expected ones.
  static func selfModifyingRow(engine: String, timeoutSeconds: Double) -> BtBenchReport.Behaviour {
    let property = "self-modifying code"
    do {
      let run = try self.run(selfModifying, engine: engine, timeoutSeconds: timeoutSeconds)
      let passed = run.output == selfModifyingExpected.output && run.outcome.exitStatus == selfModifyingExpected.status
      var observed = "printed \(quoted(run.output)), status \(run.outcome.exitStatus)"
      if engine == "sbt" {
        observed +=
          "; \(run.counters["sbt-blocks-found"] ?? 0) file blocks found, "
          + "\(run.counters["sbt-pages-rejected"] ?? 0) written pages rejected"
      } else if engine == "dbt" {
        observed += "; \(run.counters["dbt-invalidations"] ?? 0) blocks invalidated"
      }
      return .init(property: property, engine: engine, passed: passed, observed: observed)
    } catch {
      return .init(property: property, engine: engine, passed: false, observed: "could not run: \(error)")
    }
  }

  /// The precise-fault probe on `engine`: passed when the machine stopped at the faulting load
  /// with the instructions before it done and none after.
  static func preciseFaultRow(engine: String, timeoutSeconds: Double) -> BtBenchReport.Behaviour {
    let property = "precise faults"
    do {
      let run = try self.run(preciseFault, engine: engine, timeoutSeconds: timeoutSeconds)
      guard case .shutdown(_, let report) = run.outcome.reason, let registers = report.registers else {
        let reason = run.outcome.reason.description.split(separator: "\n").first ?? ""
        return .init(property: property, engine: engine, passed: false, observed: "stopped otherwise: \(reason)")
      }
      let passed = registers.rip == preciseFaultExpected.rip && registers.rbx == preciseFaultExpected.rbx
      let observed =
        "stopped at rip 0x\(String(registers.rip, radix: 16)) with ebx \(registers.rbx) "
        + "(expected 0x\(String(preciseFaultExpected.rip, radix: 16)) and \(preciseFaultExpected.rbx))"
        + (engine == "interp" ? "" : "; \(run.counters["dbt-translated-instructions"] ?? 0) instructions translated")
      return .init(property: property, engine: engine, passed: passed, observed: observed)
    } catch {
      return .init(property: property, engine: engine, passed: false, observed: "could not run: \(error)")
    }
  }

  /// What one probe run gave.
  struct Run {
    /// COM1 output.
    var output: String
    /// How the machine stopped.
    var outcome: RunOutcome
    /// The engine's counters by name.
    var counters: [String: UInt64]
  }

  /// The load options of a probe: a flat 64-bit binary at `base`.
  static var loadOptions: LoadOptions { LoadOptions(flatAddress: base, flatMode: .long64) }

  /// Runs `guest` on a fresh `engine` (sbt with the guest's translation file, made in memory).
  static func run(_ guest: [UInt8], engine name: String, timeoutSeconds: Double) throws -> Run {
    let engine: any Engine
    if name == "sbt" {
      let report = try StaticTranslation.translate(image: guest, options: loadOptions, ramSize: 8 << 20)
      engine = StaticTranslatorEngine(translations: StaticTranslationSet(report.file))
    } else {
      engine = try EngineRegistry.make(name)
    }
    let memory = try GuestMemory(ramSize: 8 << 20)
    let boot = try ImageLoader.load(image: guest, into: memory, options: loadOptions)
    let console = BtRunner.Console(start: DispatchTime.now().uptimeNanoseconds)
    var configuration = MachineConfiguration(
      consoleCapture: { console.append($0) }, timeoutSeconds: timeoutSeconds)
    configuration.firmwareConfigurationDevice = false
    let vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    let outcome = vm.run()
    var counters: [String: UInt64] = [:]
    for c in outcome.statistics.engineCounters { counters[c.name] = c.value }
    return Run(output: console.text, outcome: outcome, counters: counters)
  }

  /// `text` in quotes with the newline shown as `\n`.
  static func quoted(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\n", with: "\\n") + "\""
  }
}
