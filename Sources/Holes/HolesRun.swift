import Foundation
import Launcher
import TrapEngine
import VMM

/// Runs the holes probe guest on engines and classifies what it stored.
public enum Holes {
  /// One engine's column: its classes, or why it could not run.
  public struct Column: Sendable, Equatable {
    /// The engine's `--engine` name.
    public var engine: String
    /// Each probe's class (empty when the engine was skipped).
    public var classes: [HoleProbe: HoleClass]
    /// The raw results (nil when skipped).
    public var results: HoleProbeResults?
    /// Why the engine did not run the probe (unusable on this host), or nil.
    public var skipped: String?
  }

  /// Engines the table has columns for today, in order; `trap` and `hybrid` pass the trap
  /// monitor's values to `classify` (`monitorValues(engine:)`). `trap-no-umip` is `trap` with the
  /// real CR4.UMIP left clear even where the host offers it: the table with and without UMIP,
  /// measured on one host.
  public static let engines = ["interp", "dbt", "kvm", "trap", trapWithoutUMIP, "hybrid"]
  /// The column of `trap` run without UMIP.
  public static let trapWithoutUMIP = "trap-no-umip"

  /// What a leaking instruction shows on `engine` instead of the guest's answer: on `trap`, the
  /// real CPU's state under the deprivileged monitor (its GDTR, IDTR, LDTR and TR, CR0's low word,
  /// RFLAGS.IF always set) and the ring-3 selectors the real CPU shows: on this host's kvm_pvm its
  /// own user selectors (CS 0x33, SS 0x2b, null DS and FS, as Linux's user mode has them), not the
  /// monitor's GDT selectors; on `hybrid` the same (its user side is a trap vCPU, so a probe that
  /// ran there would show them); nothing on the other engines.
  public static func monitorValues(engine: String) -> [HoleProbe: HoleObservation] {
    guard engine == "trap" || engine == trapWithoutUMIP || engine == "hybrid" else { return [:] }
    let real = DeprivilegedMonitorPages.specialRegisters(vcpu: 0, cr3: 0)
    return [
      .sgdt: HoleObservation(value: real.gdt.base, aux: UInt64(real.gdt.limit)),
      .sidt: HoleObservation(value: real.idt.base, aux: UInt64(real.idt.limit)),
      .sldt: HoleObservation(value: UInt64(real.ldt.selector)),
      .smsw: HoleObservation(value: real.cr0 & 0xFFFF),
      .str: HoleObservation(value: UInt64(real.tr.selector)),
      .pushfAfterCLI: HoleObservation(value: HoleProbe.interruptFlag),
      .popfClearsIF: HoleObservation(value: HoleProbe.interruptFlag),
      .movFromCS: HoleObservation(value: 0x33),
      .movFromDS: HoleObservation(value: 0),
      .movFromSS: HoleObservation(value: 0x2B),
      .pushPopFS: HoleObservation(value: 0),
      .farRET: HoleObservation(value: 0x33),
      .farJMP: HoleObservation(value: 0x33),
      .farCALL: HoleObservation(value: 0x33, aux: 0x33),
    ]
  }

  /// Runs the probe on new VMs made by `makeEngine` until it gets to the end: a probe that stops
  /// the guest (an exception, or the engine failing, as KVM does when it cannot emulate an
  /// instruction) is recorded and skipped on the next run. Throws when the guest stops outside
  /// any probe.
  public static func runProbe(makeEngine: () throws -> any Engine) throws -> HoleProbeResults {
    var stops: [Int: String] = [:]
    for _ in 0...HoleProbe.allCases.count {
      let skipMask = stops.keys.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
      let (bytes, engineStop) = try runOnce(on: try makeEngine(), skipMask: skipMask)
      var results = HoleProbeResults(bytes: bytes, stops: stops)
      if let engineStop, !results.completed { results.stops[results.current] = "engine: " + engineStop }
      if results.completed { return results }
      guard HoleProbe(rawValue: results.current) != nil, results.stops[results.current] != nil,
        stops[results.current] == nil
      else {
        throw HolesError("the probe guest stopped outside the probes: \(engineStop ?? "no exit to isa-debug-exit")")
      }
      stops = results.stops
    }
    throw HolesError("the probe guest did not finish")
  }

  /// One run of the probe with `skipMask` on a new VM of `engine`: the result area as the guest
  /// left it, and the engine's stop (an exit other than isa-debug-exit) when there was one.
  static func runOnce(on engine: any Engine, skipMask: UInt64) throws -> (bytes: [UInt8], engineStop: String?) {
    let memory = try GuestMemory(ramSize: 8 << 20)  // trap's monitor and shadow pool need 8 MiB
    try memory.write(0x10000, bytes: HolesProbeImage.image)
    try memory.write(skipMask, at: HoleProbeResults.address + HoleProbeResults.skipMaskOffset)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    let vm = try engine.createVM(memory: memory, options: EngineOptions())
    let vcpu = try vm.createVCPU(index: 0)
    try vcpu.setSpecialRegisters(boot.specialRegisters)
    try vcpu.setRegisters(boot.registers)
    var engineStop: String? = "the guest ran too long"
    // A few hundred instructions; the bound only stops a runaway guest.
    loop: for _ in 0..<1000 {
      let exit = try vcpu.run(budget: 100_000)
      switch exit {
      case .io(let access) where access.port == 0xF4 && access.isWrite:
        engineStop = nil
        break loop
      case .io(let access):
        try vcpu.complete(access.isWrite ? .none : .value(~0))
      case .budgetExhausted, .kicked, .interruptWindow:
        continue
      case .internalError(let report):
        engineStop = report.description.split(separator: "\n").first.map(String.init) ?? "internal error"
        break loop
      default:
        engineStop = "exit \(exit.reasonName)"
        break loop
      }
    }
    return (try memory.read(HoleProbeResults.address, count: HoleProbeResults.size), engineStop)
  }

  /// Runs the probe on the engine called `name` (made through `EngineRegistry`), or returns the
  /// column skipped with the reason when the engine cannot run on this host.
  public static func column(engine name: String, monitorValues: [HoleProbe: HoleObservation] = [:]) throws -> Column {
    let registered = name == trapWithoutUMIP ? "trap" : name
    guard let entry = EngineRegistry.entries.first(where: { $0.name == registered }) else {
      throw HolesError("unknown engine '\(name)' (choose from \(engines.joined(separator: ", ")))")
    }
    if let why = entry.unavailableReason() {
      return Column(engine: name, classes: [:], results: nil, skipped: why)
    }
    let results = try runProbe { name == trapWithoutUMIP ? try TrapEngine(umip: false) : try entry.make(false) }
    let known = monitorValues.isEmpty ? Self.monitorValues(engine: name) : monitorValues
    return Column(engine: name, classes: classify(results, monitorValues: known), results: results, skipped: nil)
  }
}

/// A failure of the holes run, in one line.
public struct HolesError: Error, CustomStringConvertible {
  /// What went wrong.
  public let description: String
  /// An error saying `description`.
  public init(_ description: String) { self.description = description }
}
