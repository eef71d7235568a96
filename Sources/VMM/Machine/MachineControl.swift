import Synchronization

/// The machine-wide control lines: stop, reset, pause/resume and the A20 gate. Devices, the signal watcher and
/// the deadline timer *request*; the vCPU runners *act*. It replaces polling device fields after
/// every exit: a request bumps one atomic counter and kicks every runner, and each runner compares
/// that counter with the value its last `take()` returned (`hasChanged(since:)`, a single load on
/// the common path). A counter rather than a flag that `take()` clears: with several runners, the
/// first to take a change must not hide it from the others.
///
/// Threading: every method is safe from any thread. Requests never block on a vCPU and never take
/// another lock while holding the control's own (it is first in the lock order of
/// docs/design/machine.md), so a device may call them while the bus holds the device's lock.
public final class MachineControl: @unchecked Sendable {
  /// Who asked for a reset (for the log and for tests that check how a guest reboots).
  public enum ResetSource: String, Sendable, Equatable {
    /// The i8042's output-port reset line (command 0xFE, or output-port bit 0 written as 0).
    case keyboardController = "keyboard controller (port 0x64)"
    /// Port 0x92 bit 0 ("fast reset").
    case fastResetPort = "port 0x92"
    /// The PIIX reset control register at port 0xCF9.
    case resetControlRegister = "reset control register (port 0xCF9)"
    /// A triple fault, with the machine configured to reboot on it.
    case tripleFault = "triple fault"
    /// A paravirtual guest's `sched_op(shutdown, reboot)`.
    case hypercall = "hypercall (sched_op shutdown, reboot)"
  }

  /// What drives the A20 gate; the effective gate is open when any source holds it open.
  public enum A20Source: Int, Sendable, CaseIterable {
    /// The i8042's output-port bit 1.
    case keyboardController
    /// Port 0x92 bit 1.
    case fastA20Port
  }

  /// A snapshot of the control lines, taken by a runner when `changed` is set.
  public struct State: Sendable, Equatable {
    /// The first stop requested, if any.
    public var stop: StopReason?
    /// The first reset requested since the last one was carried out, if any.
    public var reset: ResetSource?
    /// The effective A20 gate.
    public var a20Enabled: Bool
    /// The runners must park (`park()`) until `resume()`.
    public var paused: Bool
    /// The change counter when this snapshot was taken: pass it to `hasChanged(since:)`.
    public var generation: UInt64
  }

  private let lock = NSLockLike()
  private var stopReason: StopReason?
  private var pendingReset: ResetSource?
  /// A20 sources holding the gate open, one bit per `A20Source`.
  private var a20Sources: UInt8
  private var kicks: [@Sendable () -> Void] = []
  private var pauseRequested = false
  /// Runners parked in `park()` right now.
  private var parkedRunners = 0
  private let parkCondition = Condition()
  /// Bumped after every request has updated the lines.
  private let changes = Atomic<UInt64>(0)
  /// Resets carried out so far.
  public private(set) var resetCount = 0
  /// Every reset requested, in order (reset requests are rare; the list stays short).
  public private(set) var resetHistory: [ResetSource] = []

  /// A control with the A20 gate open (the keyboard controller holds it open at power-on, as on
  /// QEMU's PC) and nothing requested.
  public init() {
    a20Sources = 1 << UInt8(A20Source.keyboardController.rawValue)
  }

  /// True when a stop, reset, pause or A20 change was requested after the snapshot whose
  /// `State.generation` is `generation` (0: since the control was made). One atomic load.
  @inline(__always)
  public func hasChanged(since generation: UInt64) -> Bool { changes.load(ordering: .acquiring) != generation }

  /// The current lines. A stop stays set once requested (every runner must see it); a reset stays
  /// pending until `completeReset` (called by whoever carries it out). The counter is read before
  /// the lines, so a request racing with this call is seen again by `hasChanged(since:)`.
  public func take() -> State {
    lock.locked {
      State(
        stop: stopReason, reset: pendingReset, a20Enabled: a20Sources != 0, paused: pauseRequested,
        generation: changes.load(ordering: .acquiring))
    }
  }

  /// The first stop requested, if any (without clearing anything).
  public var requestedStop: StopReason? { lock.locked { stopReason } }

  /// The effective A20 gate.
  public var a20Enabled: Bool { lock.locked { a20Sources != 0 } }

  /// Asks every runner to stop with `reason`; the first request wins. A paused machine stops too.
  public func requestStop(_ reason: StopReason) {
    lock.locked {
      if stopReason == nil { stopReason = reason }
      parkCondition.broadcast()
    }
    notify()
  }

  /// Asks every runner to park at its next exit, with the guest's state complete and consistent
  /// (for a debugger, a snapshot, or a reset of several vCPUs). Returns at once; `waitUntilParked`
  /// waits for the runners. Guest time keeps running under host time while paused.
  public func pause() {
    lock.locked { pauseRequested = true }
    notify()
  }

  /// Lets parked runners go on.
  public func resume() {
    lock.locked {
      pauseRequested = false
      parkCondition.broadcast()
    }
    notify()
  }

  /// True between `pause()` and `resume()`.
  public var isPaused: Bool { lock.locked { pauseRequested } }

  /// Runners parked right now.
  public var parkedCount: Int { lock.locked { parkedRunners } }

  /// Waits until `count` runners are parked (or a stop is requested: they will not park then).
  /// Returns true when they are parked.
  @discardableResult
  public func waitUntilParked(_ count: Int) -> Bool {
    lock.locked {
      while parkedRunners < count && stopReason == nil { parkCondition.wait(lock) }
      return parkedRunners >= count
    }
  }

  /// Called by a runner that saw `State.paused` (or, on an application processor, a pending reset
  /// that the bootstrap processor carries out): blocks until `resume()` and the end of the reset, or
  /// a stop request.
  public func park() {
    lock.locked {
      parkedRunners += 1
      parkCondition.broadcast()
      while (pauseRequested || pendingReset != nil) && stopReason == nil { parkCondition.wait(lock) }
      parkedRunners -= 1
    }
  }

  /// Asks for a machine reset; while one is pending, further requests join it.
  public func requestReset(_ source: ResetSource) {
    lock.locked {
      if pendingReset == nil { pendingReset = source }
      resetHistory.append(source)
    }
    notify()
  }

  /// The pending reset was carried out (or turned into a stop); the A20 gate is back at its
  /// power-on state.
  public func completeReset() {
    lock.locked {
      pendingReset = nil
      parkCondition.broadcast()
      resetCount += 1
      a20Sources = 1 << UInt8(A20Source.keyboardController.rawValue)
    }
    notify()
  }

  /// `source` now holds the A20 gate open (`enabled`) or lets it close.
  public func setA20(_ source: A20Source, enabled: Bool) {
    let bit: UInt8 = 1 << UInt8(source.rawValue)
    let changedGate: Bool = lock.locked {
      let before = a20Sources != 0
      a20Sources = enabled ? a20Sources | bit : a20Sources & ~bit
      return before != (a20Sources != 0)
    }
    if changedGate { notify() }
  }

  /// Registers a way to interrupt a runner (its vCPU's `kick` and its idle wakeup). The machine
  /// adds one per runner before the run starts.
  public func addKick(_ kick: @escaping @Sendable () -> Void) {
    lock.locked { kicks.append(kick) }
  }

  /// Removes every registered kick (the run has ended).
  public func removeKicks() {
    lock.locked { kicks.removeAll() }
  }

  private func notify() {
    changes.add(1, ordering: .releasing)
    let targets = lock.locked { kicks }
    for kick in targets { kick() }
  }
}
