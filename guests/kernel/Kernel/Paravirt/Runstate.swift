/// Steal time in paravirtual mode: the hypervisor accounts each vCPU's time per runstate (Xen's
/// `vcpu_runstate_info`: running, runnable, blocked, offline). Time spent runnable is time the
/// vCPU wanted a physical CPU and the hypervisor's scheduler gave it to someone else.
extension Paravirt {
  /// `vcpu_op(get_runstate_info)`.
  private static let getRunstateInfo: UInt64 = 4

  /// Prints vCPU 0's time per runstate (`vcpu_op(get_runstate_info)`) in nanoseconds, the
  /// runnable time being its steal time: `PV-RUNSTATE running_ns=R steal_ns=S blocked_ns=B`.
  static func reportRunstate() {
    // { int state @0; u64 state_entry_time @8; u64 time[4] @16 }
    var info: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
    let result = withUnsafeMutablePointer(to: &info) { pointer in
      Hypercall.call(Hypercall.vcpuOp, getRunstateInfo, 0, Hypercall.address(pointer))
    }
    guard result == 0 else { return }
    Console.write("PV-RUNSTATE running_ns=")
    Console.write(unsigned: info.2)
    Console.write(" steal_ns=")
    Console.write(unsigned: info.3)
    Console.write(" blocked_ns=")
    Console.write(unsigned: info.4)
    Console.newline()
  }
}
