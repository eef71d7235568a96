import Synchronization

/// Remote TLB flushes the calling vCPU waits for, as Xen's `mmuext_op` and `update_va_mapping`
/// do: a flush of other vCPUs returns to its caller only once none of them can still run guest
/// code on translations cached before it.
///
/// A runner flushes only between runs of its engine (`ParavirtDomain.takeTranslationFlush`,
/// under the machine lock, before each entry), so a target is a danger only while a run that
/// began before the request lasts. Each vCPU's `runState` is odd from the runner's last check
/// before an entry (taken under the machine lock, together with the flush check) until the
/// engine's run returns, even otherwise: halted, blocked, waiting for a pCPU, down, parked,
/// stopping, or in a hypercall (waiting for a flush itself included). The handler that requests
/// the flush (under the lock, on the caller's runner thread) notes each target whose state is
/// odd, with that state; after the hypercall, with the lock released, the caller's runner
/// sleeps until every noted state has changed (the target's run returned: the kick ends it) and
/// only then enters the guest again. Targets outside the guest count as done: they flush
/// before their next entry. Waiting needs nothing but engine runs ending, which no lock and no
/// waiter holds up, so two vCPUs flushing each other cannot deadlock, and a stop, pause or reset
/// (which end every run) cannot leave a runner waiting.
///
/// Uniprocessor machines track nothing (`tracking` false).
final class TranslationFlushBarrier: @unchecked Sendable {
  /// One vCPU's part.
  final class Slot: @unchecked Sendable {
    /// Odd while the vCPU's runner may run guest code, even otherwise (one step per change).
    let runState = Atomic<UInt64>(0)
    /// True while this vCPU's runner sleeps in `VCPURunner.awaitRemoteFlushes`.
    let waiting = Atomic<Bool>(false)
    /// Targets of this vCPU's flushes with the run state they had: the runner waits until each
    /// changed. Only the vCPU's own runner thread (serving its hypercalls) touches it.
    var awaited: [(vcpu: Int, state: UInt64)] = []
  }

  /// Per vCPU, by index.
  let slots: [Slot]
  /// Whether there is anything to track (more than one vCPU).
  let tracking: Bool
  /// Runners sleeping for flushes now: a run that ends looks for them only when there is one.
  let waiters = Atomic<Int>(0)
  /// Flushes a caller had to wait for (targets in the guest at the request), for `--stats`-like
  /// reports and tests.
  let waits = Atomic<UInt64>(0)

  /// A barrier for `vcpuCount` vCPUs.
  init(vcpuCount: Int) {
    slots = (0..<vcpuCount).map { _ in Slot() }
    tracking = vcpuCount > 1
  }

  /// vCPU `index`'s runner is about to enter the guest. Called under the machine lock, after its
  /// flush check and before it releases the lock for the engine's run.
  func enteringGuest(_ index: Int) {
    guard tracking else { return }
    let slot = slots[index]
    let state = slot.runState.load(ordering: .relaxed)
    if state & 1 == 0 { slot.runState.store(state &+ 1, ordering: .sequentiallyConsistent) }
  }

  /// vCPU `index`'s engine run returned; true when some runner waits for flushes and must be
  /// woken to look again.
  func leftGuest(_ index: Int) -> Bool {
    guard tracking else { return false }
    let slot = slots[index]
    let state = slot.runState.load(ordering: .relaxed)
    if state & 1 != 0 { slot.runState.store(state &+ 1, ordering: .sequentiallyConsistent) }
    return waiters.load(ordering: .sequentiallyConsistent) > 0
  }

  /// Under the machine lock, on `caller`'s runner thread: `target` was asked to flush; the caller
  /// must wait for it when it may be running guest code now.
  func await(_ target: Int, by caller: Int) {
    guard tracking, target != caller, slots.indices.contains(target), slots.indices.contains(caller) else { return }
    let state = slots[target].runState.load(ordering: .sequentiallyConsistent)
    guard state & 1 != 0 else { return }
    if !slots[caller].awaited.contains(where: { $0.vcpu == target }) {
      slots[caller].awaited.append((target, state))
      waits.add(1, ordering: .relaxed)
    }
  }

  /// Whether `caller` has flushes to wait for (its own thread).
  func hasAwaited(_ caller: Int) -> Bool { tracking && !slots[caller].awaited.isEmpty }

  /// Drops from `caller`'s list the targets whose run has ended since; true when none is left.
  func settle(_ caller: Int) -> Bool {
    slots[caller].awaited.removeAll { slots[$0.vcpu].runState.load(ordering: .sequentiallyConsistent) != $0.state }
    return slots[caller].awaited.isEmpty
  }

  /// Forgets what `caller` waits for (a stop or reset calls the wait off).
  func abandon(_ caller: Int) { slots[caller].awaited.removeAll() }
}
