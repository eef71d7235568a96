import CAtomics
import Scheduling
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A machine's place under a shared `PhysicalCPUPool` (`MachineConfiguration.scheduling`): which
/// of the pool's vCPUs each of the machine's vCPUs is, and optionally the host CPUs each vCPU
/// thread is bound to. Whoever builds it adds the VM and its vCPUs (weight, cap, affinity, node)
/// to the pool's scheduler first, and starts and stops the pool (several machines may share it).
///
/// With it, every vCPU runner holds one of the pool's pCPUs while it runs guest code: it acquires
/// one before entering the guest, gives it back when the pool asks (`mustYield`, checked after
/// every exit; the pool kicks the vCPU at the end of its slice) and when the guest idles (HLT,
/// wait-for-SIPI: released as blocked, so an idle vCPU holds no pCPU), and at the end of the run.
public struct VCPUScheduling {
  /// The pool the machine's vCPUs share with every other machine under it.
  public var pool: PhysicalCPUPool
  /// The scheduler's name for each vCPU of the machine, by vCPU index (one per vCPU).
  public var vcpus: [VCPUID]
  /// Per vCPU index: host CPUs its thread is bound to (`sched_setaffinity`), nil or missing: not
  /// bound. Host CPUs the host does not have are left out; when none is left the thread is not
  /// bound.
  public var hostCPUs: [[Int]?]
  /// Pause-loop exiting: a vCPU seen spinning this many PAUSEs in a row, each within 64
  /// instructions of the one before (interp, dbt: `CPU.pauseLoopLength`), yields its pCPU to a
  /// sibling (0: off; kvm: KVM's own PLE).
  public var pauseLoopPauses: UInt64 = VCPUScheduling.defaultPauseLoopPauses
  /// The default: 256 PAUSEs in a row, about a thousand instructions of spinning without a break.
  /// A vCPU waiting for a lock its running siblings pass around waits a critical section, a few
  /// PAUSEs, and never reaches it; one waiting for a descheduled holder reaches it at once.
  public static let defaultPauseLoopPauses: UInt64 = 256
  /// Counts PAUSE-loop yields (`yieldSpinning`) the runners asked for.
  public let spinYields = SpinYieldCounter()

  /// The machine's vCPUs as `vcpus` of `pool`, optionally bound to `hostCPUs`.
  public init(pool: PhysicalCPUPool, vcpus: [VCPUID], hostCPUs: [[Int]?] = []) {
    self.pool = pool
    self.vcpus = vcpus
    self.hostCPUs = hostCPUs
  }

  /// Binds the calling thread to `cpus` (the host CPUs that exist among them); false when none
  /// exists or the host refused.
  @discardableResult
  public static func bindCurrentThread(to cpus: [Int]) -> Bool {
    let count = Int(sysconf(Int32(_SC_NPROCESSORS_CONF)))
    let usable = cpus.filter { $0 >= 0 && $0 < count }.map { Int32($0) }
    guard !usable.isEmpty else { return false }
    return usable.withUnsafeBufferPointer { trivisor_bind_current_thread($0.baseAddress, Int32($0.count)) } == 0
  }
}

/// A counter any vCPU thread may bump (PAUSE-loop yields of a machine).
public final class SpinYieldCounter: @unchecked Sendable {
  private let count = Atomic<Int>(0)
  /// A counter at zero.
  public init() {}
  /// Adds one.
  func increment() { count.add(1, ordering: .relaxed) }
  /// The count so far.
  public var value: Int { count.load(ordering: .relaxed) }
}
