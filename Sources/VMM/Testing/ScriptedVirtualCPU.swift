import Synchronization

/// A `VirtualCPU` whose guest is a script: each `run(budget:)` returns the exit the next step of
/// the script produces, and every call the VMM makes on the vCPU is recorded in `calls`. It lets
/// tests drive the run loop, the devices and the exit handling exactly, with no engine, no guest
/// code and no host timing, the way SwiftNIO's `EmbeddedChannel` drives a channel pipeline.
///
/// A step sees the vCPU, so it can read what the VMM answered (`lastResponse`), which interrupt
/// was delivered (`deliveredVectors`) or the registers, and decide the next exit from them. When
/// the script runs out, `run` returns an `.internalError` whose reason is `scriptEndedReason`.
///
/// Interrupts behave like a real vCPU's at instruction boundaries: an injected vector is delivered
/// at the next `run` (recorded in `deliveredVectors`), `readyForInterruptInjection` follows
/// RFLAGS.IF and whether a vector is already queued. Threading: as for every `VirtualCPU`, one
/// thread drives it; `kick()` may come from any thread and makes the next `run` return `.kicked`.
public final class ScriptedVirtualCPU: VirtualCPU {
  /// One step of the script: the exit the guest takes next, chosen by a closure that sees the vCPU.
  public struct Step {
    let body: (ScriptedVirtualCPU) -> VMExit
    /// A step whose exit `body` decides (it may also read or change the vCPU's state).
    public init(_ body: @escaping (ScriptedVirtualCPU) -> VMExit) { self.body = body }
  }

  /// A call the VMM made, in order.
  public enum Call: Sendable, Equatable {
    case run(budget: UInt64?)
    case complete(ExitResponse)
    case injectInterrupt(vector: UInt8)
    case requestInterruptWindow(Bool)
    case setA20Gate(Bool)
    case reset
  }

  /// The reason of the `.internalError` exit returned once the script has no steps left.
  public static let scriptEndedReason = "the scripted guest has no more steps"

  /// The engine name reports show.
  public let engineName = "scripted"
  /// The steps not yet taken.
  public var script: [Step]
  /// Every call the VMM made on this vCPU, in order (`kick` is not recorded: it may come from any
  /// thread).
  public private(set) var calls: [Call] = []
  /// The last answer the VMM handed back with `complete`.
  public private(set) var lastResponse: ExitResponse?
  /// Vectors injected by the VMM and delivered at the start of a `run`, in order.
  public private(set) var deliveredVectors: [UInt8] = []
  /// The registers as the VMM set them (or a step changed them); RFLAGS.IF gates injection.
  public var currentRegisters = Registers()
  /// The special registers as the VMM last set them.
  public var currentSpecialRegisters = SpecialRegisters()
  /// The MSRs the VMM wrote with `setMSRs`.
  public private(set) var msrs: [UInt32: UInt64] = [:]
  /// Accepted and kept; the script decides the exits.
  public var exitControls = ExitControls()
  /// None: the script can produce any exit.
  public var unsupportedExitControls: [String] { [] }
  /// The scripted vCPU records A20 changes, so it says it supports them.
  public var supportsA20Masking: Bool { true }
  /// Runs that returned an exit from the script (`.kicked` returns are not counted).
  public var instructionsRetired: UInt64? { UInt64(stepsTaken) }

  private var queuedVector: UInt8?
  private var stepsTaken = 0
  private let kickPending = Atomic<Bool>(false)

  /// A vCPU that takes `script`'s steps in order.
  public init(script: [Step] = []) {
    self.script = script
  }

  /// The next scripted exit (`.kicked` when a kick is pending), recording the call.
  public func run(budget: UInt64?) throws(EngineError) -> VMExit {
    calls.append(.run(budget: budget))
    if let v = queuedVector {
      deliveredVectors.append(v)
      queuedVector = nil
    }
    if kickPending.exchange(false, ordering: .acquiringAndReleasing) { return .kicked }
    guard !script.isEmpty else { return .internalError(InternalErrorReport(reason: Self.scriptEndedReason)) }
    stepsTaken += 1
    return script.removeFirst().body(self)
  }

  /// Records the VMM's answer to the last exit.
  public func complete(_ response: ExitResponse) throws(EngineError) {
    calls.append(.complete(response))
    lastResponse = response
  }

  /// The registers as last set.
  public func registers() throws(EngineError) -> Registers { currentRegisters }
  /// Replaces the registers.
  public func setRegisters(_ registers: Registers) throws(EngineError) { currentRegisters = registers }
  /// The special registers as last set.
  public func specialRegisters() throws(EngineError) -> SpecialRegisters { currentSpecialRegisters }
  /// Replaces the special registers.
  public func setSpecialRegisters(_ registers: SpecialRegisters) throws(EngineError) {
    currentSpecialRegisters = registers
  }
  /// How many times the VMM asked the vCPU to drop its cached translations.
  public private(set) var translationFlushes = 0
  /// Counts the flush (a script has no translations to drop).
  public func invalidateTranslations() throws(EngineError) { translationFlushes += 1 }
  /// Records the MSRs the VMM set.
  public func setMSRs(_ msrs: [UInt32: UInt64]) throws(EngineError) {
    self.msrs.merge(msrs) { _, new in new }
  }

  /// Records the reset and returns registers to their defaults; a queued vector is dropped.
  public func reset() throws(EngineError) {
    calls.append(.reset)
    queuedVector = nil
    currentRegisters = Registers()
    currentSpecialRegisters = SpecialRegisters()
  }

  /// CR8 in the special registers (a step may change it, as a guest's MOV to CR8 would).
  public var taskPriority: UInt8 {
    get { UInt8(truncatingIfNeeded: currentSpecialRegisters.cr8) }
    set { currentSpecialRegisters.cr8 = UInt64(newValue & 15) }
  }
  /// As the VMM last set it (a step that lowers CR8 below it should return `.interruptWindow`).
  public var taskPriorityThreshold: UInt8 = 0

  /// True when RFLAGS.IF is set and no vector is queued.
  public var readyForInterruptInjection: Bool { currentRegisters.rflags & 0x200 != 0 && queuedVector == nil }

  /// Queues `vector` and records it as delivered.
  public func injectInterrupt(vector: UInt8) throws(EngineError) {
    guard queuedVector == nil else { throw EngineError("an interrupt is already queued for injection") }
    calls.append(.injectInterrupt(vector: vector))
    queuedVector = vector
  }

  /// Records the request.
  public func requestInterruptWindow(_ enabled: Bool) { calls.append(.requestInterruptWindow(enabled)) }
  /// Records the A20 change.
  public func setA20Gate(_ enabled: Bool) { calls.append(.setA20Gate(enabled)) }
  /// Makes the next (or current) `run` return `.kicked`; any thread.
  public func kick() { kickPending.store(true, ordering: .releasing) }
}

extension ScriptedVirtualCPU.Step {
  /// `OUT port, value` of `size` bytes.
  public static func portOut(_ port: UInt16, _ value: UInt32, size: Int = 1) -> Self {
    .exit(.io(PortAccess(port: port, size: size, isWrite: true, value: value)))
  }

  /// `IN` of `size` bytes from `port`; the VMM answers through `complete`.
  public static func portIn(_ port: UInt16, size: Int = 1) -> Self {
    .exit(.io(PortAccess(port: port, size: size, isWrite: false)))
  }

  /// One `OUT` per byte of `text` to `port` (a guest printing to a UART or the debug console).
  public static func print(_ text: String, port: UInt16) -> [Self] {
    text.utf8.map { portOut(port, UInt32($0)) }
  }

  /// The exit `exit`, whatever the state.
  public static func exit(_ exit: VMExit) -> Self { Self { _ in exit } }
}

/// An `Engine` whose VM has `ScriptedVirtualCPU`s (with the VMM's own PIC and PIT, and host
/// time), one script each. Tests keep the vCPUs to script them and to read what the VMM did.
public final class ScriptedEngine: Engine, EngineVM {
  /// The engine's name.
  public let name = "scripted"
  /// The vCPUs, by index.
  public let vcpus: [ScriptedVirtualCPU]
  /// vCPU 0, the bootstrap processor.
  public var vcpu: ScriptedVirtualCPU { vcpus[0] }

  /// An engine whose one vCPU runs `script`.
  public convenience init(script: [ScriptedVirtualCPU.Step] = []) {
    self.init(scripts: [script])
  }

  /// An engine with one vCPU per script.
  public init(scripts: [[ScriptedVirtualCPU.Step]]) {
    vcpus = scripts.map { ScriptedVirtualCPU(script: $0) }
  }

  /// The engine is its own VM (it has nothing to share between vCPUs).
  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard options.interruptController == .user else {
      throw EngineError("the scripted engine has no in-kernel interrupt controller")
    }
    return self
  }

  /// No in-kernel interrupt controller.
  public var engineInterruptSink: (any InterruptSink)? { nil }
  /// Host time.
  public var clock: (any InstructionDrivenClock)? { nil }

  /// The vCPU with the script of `index`.
  public func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    guard vcpus.indices.contains(index) else { throw EngineError("the scripted engine has \(vcpus.count) vCPUs") }
    return vcpus[index]
  }
}
