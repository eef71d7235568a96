/// One vCPU of one VM, as the scheduler names it.
public struct VCPUID: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// The VM's index (order of `CreditScheduler.addVM`).
  public var vm: Int
  /// The vCPU's index within its VM.
  public var vcpu: Int

  /// vCPU `vcpu` of VM `vm`.
  public init(vm: Int, vcpu: Int) {
    self.vm = vm
    self.vcpu = vcpu
  }

  /// VM order, then vCPU order.
  public static func < (a: Self, b: Self) -> Bool { (a.vm, a.vcpu) < (b.vm, b.vcpu) }

  /// "vm0.1".
  public var description: String { "vm\(vm).\(vcpu)" }
}

/// A VM's share of the machine: its weight against the other VMs, and an optional cap.
public struct VMShare: Sendable, Equatable {
  /// Relative weight (Xen's default 256): VMs that all want CPU get time in proportion.
  public var weight: Int
  /// The most CPU the VM may use, in percent of one pCPU (100 = one pCPU, 200 = two); nil: no cap.
  public var cap: Int?

  /// A share of `weight` (at least 1) with an optional `cap` in percent of one pCPU.
  public init(weight: Int = 256, cap: Int? = nil) {
    self.weight = max(1, weight)
    self.cap = cap.map { max(1, $0) }
  }
}

/// What a vCPU is doing, as the scheduler sees it.
public enum VCPURunState: Sendable, Equatable {
  /// Waiting for an event (HLT, `sched_op` block): takes no pCPU.
  case blocked
  /// Wants a pCPU and sits in a run queue.
  case runnable
  /// On pCPU `pcpu` since `since`.
  case running(pcpu: Int, since: UInt64)
  /// Capped: out of its VM's cap for this accounting period; runnable again at the next one.
  case parked
}
