extension Xen {
  /// Offsets in the shared info page and in `vcpu_info` (x86-64 ABI, `xen.h`).
  enum SharedInfoLayout {
    /// How many `vcpu_info` slots the shared info page holds.
    static let vcpuInfoSlots = 32
    /// The size of one `vcpu_info`.
    static let vcpuInfoSize: UInt64 = 64
    /// `vcpu_info.evtchn_upcall_pending` (u8).
    static let upcallPending: UInt64 = 0
    /// `vcpu_info.evtchn_upcall_mask` (u8).
    static let upcallMask: UInt64 = 1
    /// `vcpu_info.evtchn_pending_sel` (u64: which words of `evtchn_pending` to look at).
    static let pendingSelector: UInt64 = 8
    /// `vcpu_info.arch.cr2` (u64).
    static let cr2: UInt64 = 16
    /// `vcpu_info.time` (`vcpu_time_info`, 32 bytes).
    static let time: UInt64 = 32
    /// `vcpu_time_info.version` (u32, from `time`): odd while the fields change.
    static let timeVersion: UInt64 = 0
    /// `vcpu_time_info.tsc_timestamp` (u64): the TSC when `system_time` was taken.
    static let timeTSCTimestamp: UInt64 = 8
    /// `vcpu_time_info.system_time` (u64): guest ns since the machine started.
    static let timeSystemTime: UInt64 = 16
    /// `vcpu_time_info.tsc_to_system_mul` (u32).
    static let timeMultiplier: UInt64 = 24
    /// `vcpu_time_info.tsc_shift` (i8).
    static let timeShift: UInt64 = 28
    /// `vcpu_time_info.flags` (u8).
    static let timeFlags: UInt64 = 29
    /// `shared_info.evtchn_pending[64]` (u64 words).
    static let pendingBitmap: UInt64 = 2048
    /// `shared_info.evtchn_mask[64]` (u64 words).
    static let maskBitmap: UInt64 = 2560
    /// `shared_info.wc_version` (u32): odd while the wall clock changes.
    static let wallClockVersion: UInt64 = 3072
    /// `shared_info.wc_sec` (u32): seconds of the time of day at system time 0.
    static let wallClockSeconds: UInt64 = 3076
    /// `shared_info.wc_nsec` (u32).
    static let wallClockNanoseconds: UInt64 = 3080
    /// `shared_info.wc_sec_hi` (u32): the high half of the seconds (x86-64).
    static let wallClockSecondsHigh: UInt64 = 3084
  }

  /// `EVTCHNSTAT_*`: what `event_channel_op(status)` reports a port as.
  enum EventChannelStatus: UInt32 { case closed = 0, unbound = 1, interdomain = 2, pirq = 3, virq = 4, ipi = 5 }
  /// `DOMID_SELF`: the calling domain.
  static let domainSelf: UInt16 = 0x7FF0
  /// `NR_VIRQS`: virtual interrupt numbers a guest may bind.
  static let virqCount: UInt32 = 24
  /// `RUNSTATE_*`: the states of `vcpu_runstate_info`.
  enum RunState: Int { case running = 0, runnable = 1, blocked = 2, offline = 3 }
  /// `vcpu_op` flag of `set_singleshot_timer`: -ETIME when the deadline has passed.
  static let singleshotFutureFlag: UInt32 = 1
  /// `-ETIME`, returned by `set_singleshot_timer` with the future flag for a past deadline.
  static let timeErrorValue = UInt64(bitPattern: -62)
}

/// The domain's event channels (Xen's 2-level ABI) and the per-vCPU state of events and timers.
/// Pending and mask bits live in the guest's shared info page; this table keeps what the guest
/// cannot see: what each port is bound to, which vCPU it notifies, timers, polls, runstate.
final class EventChannelTable {
  /// How many ports there are (64 words of 64 bits: the whole 2-level bitmap; port 0 reserved).
  static let portCount = 4096

  /// What a port is bound to.
  enum Binding: Equatable {
    /// Not in use.
    case free
    /// Port 0: never allocated.
    case reserved
    /// Allocated, waiting for a domain that never comes (one domain): sends are dropped.
    case unbound(remoteDomain: UInt16)
    /// Bound to a virtual interrupt.
    case virq(UInt32)
    /// Bound for inter-processor events on its vCPU.
    case ipi
  }

  /// One port.
  struct Channel {
    /// Its binding.
    var binding: Binding = .free
    /// The vCPU its events are delivered to.
    var notifyVCPU = 0
  }

  /// Per-vCPU event and timer state.
  struct VCPUEvents {
    /// VIRQ number → port bound on this vCPU.
    var virqPorts: [UInt32: UInt32] = [:]
    /// `set_timer_op` / `set_singleshot_timer`: the deadline in system-time ns.
    var singleshotDeadline: UInt64?
    /// `set_periodic_timer`: the period in ns (nil: stopped) and the next deadline.
    var periodicPeriod: UInt64?
    /// See `periodicPeriod`.
    var periodicNext: UInt64 = 0
    /// `register_vcpu_info`: the guest-physical address of this vCPU's `vcpu_info` (nil: the
    /// shared info page's slot).
    var vcpuInfoAddress: UInt64?
    /// `register_runstate_memory_area`: the guest-virtual address of its runstate area.
    var runstateArea: UInt64?
    /// The runstate: current state, when it began, and time spent in each state.
    var runState = Xen.RunState.running
    /// See `runState`.
    var runStateEntry: UInt64 = 0
    /// See `runState`.
    var runStateTimes: [UInt64] = [0, 0, 0, 0]
    /// `sched_op(poll)`: the ports polled while the vCPU sleeps, and the poll's timeout.
    var pollPorts: [UInt32]?
    /// See `pollPorts` (0: none).
    var pollTimeout: UInt64 = 0
    /// The `vcpu_time_info` must be filled by the vCPU's runner (it moved or was just placed).
    var timeStale = false
  }

  /// The ports, by number.
  var channels: [Channel]
  /// The vCPUs' state, by index.
  var vcpus: [VCPUEvents]
  /// The guest-physical address of the shared info page, once placed.
  var sharedInfo: UInt64?

  /// A table for `vcpuCount` vCPUs with every port free but port 0.
  init(vcpuCount: Int) {
    channels = Array(repeating: Channel(), count: Self.portCount)
    channels[0].binding = .reserved
    vcpus = Array(repeating: VCPUEvents(), count: vcpuCount)
  }

  /// The lowest free port, or nil.
  func freePort() -> UInt32? {
    channels.firstIndex { $0.binding == .free }.map { UInt32($0) }
  }

  /// Whether `port` is a port number of the table other than the reserved port 0.
  func isValid(_ port: UInt32) -> Bool { port > 0 && Int(port) < Self.portCount }

  /// Whether VIRQ `virq` is bound per vCPU (timer, debug) rather than once for the domain.
  static func isPerVCPU(_ virq: UInt32) -> Bool { virq == Xen.VIRQ.timer.rawValue || virq == Xen.VIRQ.debug.rawValue }
}
