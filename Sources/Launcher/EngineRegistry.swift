import HybridEngine
import Interpreter
import KVMEngine
import StaticTranslator
import Translator
import TrapEngine
import VMM

/// Every engine the command line knows, in order of preference for `--engine auto`. New engines
/// (the interpreter, later the binary translator) add one entry here.
public enum EngineRegistry {
  /// One engine: its name, whether it can run on this host (and why not), and how to make it.
  public struct Entry: Sendable {
    /// The `--engine` name.
    public let name: String
    /// One line on what the engine is.
    public let summary: String
    /// nil when usable; otherwise the one-line reason.
    public let unavailableReason: @Sendable () -> String?
    /// Whether the engine can keep virtual time (`--deterministic`).
    public let supportsDeterministic: Bool
    /// Makes the engine (`deterministic`: guest time follows the instruction count).
    public let make: @Sendable (_ deterministic: Bool) throws -> any Engine
    /// Whether the engine can boot a kernel deprivileged under the paravirtual monitor (`run
    /// --pv`). Not an engine that deprivileges the guest itself with a monitor of its own in the
    /// same address-space slot (`trap`).
    public var bootsParavirtual = true

    /// The engines that can boot a kernel paravirtualized, by name.
    public static func bootsParavirtual(_ name: String) -> Bool {
      entries.first { $0.name == name }?.bootsParavirtual ?? true
    }
  }

  public static let entries: [Entry] = [
    Entry(
      name: "kvm", summary: "hardware-assisted virtualization through Linux /dev/kvm",
      unavailableReason: { kvmUnavailableReason() },
      supportsDeterministic: false,
      make: { _ in try KVMEngine() }),
    Entry(
      name: "interp", summary: "software interpreter of Trivisor's x86 model",
      unavailableReason: { nil },
      supportsDeterministic: true,
      make: { InterpreterEngine(deterministic: $0) }),
    Entry(
      name: "dbt",
      summary: "dynamic binary translator: guest code translated to host x86-64 code, the interpreter for the rest",
      unavailableReason: { translatorUnavailableReason },
      supportsDeterministic: true,
      make: { TranslatorEngine(deterministic: $0) }),
    Entry(
      name: "sbt",
      summary:
        "static binary translation: blocks from a translation file (run --translations FILE), dbt for the rest",
      unavailableReason: { translatorUnavailableReason },
      supportsDeterministic: true,
      make: { StaticTranslatorEngine(translations: nil, deterministic: $0) }),
    Entry(
      name: "trap",
      summary:
        "trap-and-emulate: guest kernel and user code at real ring 3 of a KVM VM, privileged instructions emulated",
      unavailableReason: { kvmUnavailableReason(engine: "trap runs on KVM") },
      supportsDeterministic: false,
      make: { _ in try TrapEngine() },
      bootsParavirtual: false),
    Entry(
      name: "hybrid",
      summary:
        "hybrid: guest user code natively on a trap vCPU (KVM), guest kernel code on dbt, switched per ring",
      unavailableReason: { kvmUnavailableReason(engine: "hybrid runs user code on KVM") },
      supportsDeterministic: false,
      make: { _ in try HybridEngine() },
      bootsParavirtual: false),
  ]

  /// Why `/dev/kvm` cannot be used here (nil when it can), after `engine`'s words on why that matters.
  private static func kvmUnavailableReason(engine: String? = nil) -> String? {
    do {
      _ = try KVMSystem()
      return nil
    } catch { return engine.map { "\($0): \(error)" } ?? "\(error)" }
  }

  /// Why the translators (`dbt`, `sbt`) cannot run here: they emit x86-64 code for Linux hosts.
  private static var translatorUnavailableReason: String? {
    #if arch(x86_64) && os(Linux)
      return nil
    #else
      return "the translator emits x86-64 code for Linux hosts"
    #endif
  }

  /// Names accepted by `--engine`.
  public static var names: [String] { ["auto"] + entries.map(\.name) }

  /// The engine called `name` (or `auto`), made: what tests and embedders use.
  public static func make(_ name: String, deterministic: Bool = false) throws(UsageError) -> any Engine {
    try select(name, deterministic: deterministic).engine
  }

  /// The engine `name` asks for; `auto` takes the first usable one. The note says what was chosen
  /// and why (for `--verbose`).
  /// `fallback` is set when `auto` passed over a preferred engine: the caller tells the user why.
  public static func select(_ name: String, deterministic: Bool = false)
    throws(UsageError) -> (engine: any Engine, note: String, fallback: String?)
  {
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
      throw UsageError("no engine can run on this host: " + reasons.joined(separator: "; "))
    }
    guard let e = entries.first(where: { $0.name == name }) else {
      throw UsageError("unknown engine '\(name)' (choose from \(names.joined(separator: ", ")))")
    }
    if deterministic && !e.supportsDeterministic {
      throw UsageError("engine \(name) cannot run deterministically (--deterministic needs interp)")
    }
    do {
      return (try e.make(deterministic), "engine \(e.name) (\(e.summary))", nil)
    } catch {
      throw UsageError("engine \(name) is unusable: \(error)")
    }
  }
}

/// A failure to set a run up (an unknown or unusable engine, an unreadable image, a bad option
/// value), in one line; the command line reports it with exit status 2.
public struct UsageError: Error, CustomStringConvertible {
  /// What went wrong, in one line.
  public let description: String
  /// An error saying `description`.
  public init(_ description: String) { self.description = description }
}
