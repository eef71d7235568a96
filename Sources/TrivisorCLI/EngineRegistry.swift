import Interpreter
import KVMEngine
import VMM

/// Every engine the command line knows, in order of preference for `--engine auto`. New engines
/// (the interpreter, later the binary translator) add one entry here.
struct EngineRegistry {
  /// One engine: its name, whether it can run on this host (and why not), and how to make it.
  struct Entry: Sendable {
    let name: String
    let summary: String
    /// nil when usable; otherwise the one-line reason.
    let unavailableReason: @Sendable () -> String?
    /// Whether the engine can keep virtual time (`--deterministic`).
    let supportsDeterministic: Bool
    let make: @Sendable (_ deterministic: Bool) throws -> any Engine
  }

  static let entries: [Entry] = [
    Entry(
      name: "kvm", summary: "hardware-assisted virtualization through Linux /dev/kvm",
      unavailableReason: {
        do {
          _ = try KVMSystem()
          return nil
        } catch { return "\(error)" }
      },
      supportsDeterministic: false,
      make: { _ in try KVMEngine() }),
    Entry(
      name: "interp", summary: "software interpreter of Trivisor's x86 model",
      unavailableReason: { nil },
      supportsDeterministic: true,
      make: { InterpreterEngine(deterministic: $0) }),
  ]

  /// Names accepted by `--engine`.
  static var names: [String] { ["auto"] + entries.map(\.name) }

  /// The engine `name` asks for; `auto` takes the first usable one. The note says what was chosen
  /// and why (for `--verbose`).
  /// `fallback` is set when `auto` passed over a preferred engine: the caller tells the user why.
  static func select(_ name: String, deterministic: Bool = false) throws(ExitCodeError) -> (
    engine: any Engine, note: String, fallback: String?
  ) {
    if name == "auto" {
      var reasons: [String] = []
      for e in entries {
        if deterministic && !e.supportsDeterministic {
          reasons.append("\(e.name): cannot run deterministically")
          continue
        }
        if let why = e.unavailableReason() {
          reasons.append("\(e.name): \(why)")
          continue
        }
        do {
          let fallback =
            reasons.isEmpty ? nil : "engine auto: using \(e.name) because " + reasons.joined(separator: "; ")
          return (try e.make(deterministic), "engine auto: chose \(e.name) (\(e.summary))", fallback)
        } catch {
          reasons.append("\(e.name): \(error)")
        }
      }
      throw ExitCodeError("no engine can run on this host: " + reasons.joined(separator: "; "))
    }
    guard let e = entries.first(where: { $0.name == name }) else {
      throw ExitCodeError("unknown engine '\(name)' (choose from \(names.joined(separator: ", ")))")
    }
    if deterministic && !e.supportsDeterministic {
      throw ExitCodeError("engine \(name) cannot run deterministically (--deterministic needs interp)")
    }
    do {
      return (try e.make(deterministic), "engine \(e.name) (\(e.summary))", nil)
    } catch {
      throw ExitCodeError("engine \(name) is unusable: \(error)")
    }
  }
}

/// A usage-level failure (exit status 2) carried up to the command.
struct ExitCodeError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
