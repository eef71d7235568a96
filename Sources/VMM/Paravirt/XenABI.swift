/// The numbers and layouts of the paravirtual ABI. They follow Xen's public interface (the
/// `xen/include/public` headers: hypercall numbers, sub-operation numbers, error codes, structure
/// layouts of the x86-64 ABI) so that the ABI is the one the literature describes; only the CPUID
/// signature is Trivisor's own ("TrivisorVMM"), so that Linux does not take the machine for a Xen
/// HVM guest. docs/paravirtualization.md describes the ABI as Trivisor serves it.
public enum Xen {
  /// Hypercall numbers (`__HYPERVISOR_*`).
  public enum Hypercall: UInt64, CaseIterable, Sendable {
    case setTrapTable = 0
    case mmuUpdate = 1
    case stackSwitch = 3
    case setCallbacks = 4
    case fpuTaskswitch = 5
    case memoryOp = 12
    case multicall = 13
    case updateVAMapping = 14
    case setTimerOp = 15
    case xenVersion = 17
    case consoleIO = 18
    case iret = 23
    case vcpuOp = 24
    case setSegmentBase = 25
    case mmuextOp = 26
    case schedOp = 29
    case eventChannelOp = 32
  }

  /// How many 32-byte stubs a hypercall page holds (one per possible number).
  public static let hypercallPageStubs = 128
  /// The size of one stub in the hypercall page.
  public static let hypercallStubSize = 32

  /// Error codes, as the negative values a hypercall returns (`-XEN_E*`, the Linux errno values).
  public enum Error: Int64, Sendable {
    case permissionDenied = 1  // EPERM
    case noEntry = 2  // ENOENT
    case noSuchProcess = 3  // ESRCH
    case interrupted = 4  // EINTR
    case tryAgain = 11  // EAGAIN
    case noMemory = 12  // ENOMEM
    case fault = 14  // EFAULT
    case busy = 16  // EBUSY
    case exists = 17  // EEXIST
    case invalid = 22  // EINVAL
    case noSpace = 28  // ENOSPC
    case notImplemented = 38  // ENOSYS

    /// The value the guest sees in RAX: minus the code, two's complement.
    public var returnValue: UInt64 { UInt64(bitPattern: -rawValue) }
  }

  /// CPUID leaves of the hypervisor range (Trivisor's answers, Xen's leaf meanings).
  public enum CPUIDLeaf {
    /// EAX: the highest hypervisor leaf; EBX, ECX, EDX: the signature.
    public static let signature: UInt32 = 0x4000_0000
    /// EAX: the ABI version, major << 16 | minor.
    public static let version: UInt32 = 0x4000_0001
    /// EAX: how many hypercall pages; EBX: the MSR that installs them.
    public static let hypercallPage: UInt32 = 0x4000_0002
  }

  /// The MSR a guest writes with the guest-physical address of a page to turn it into the
  /// hypercall page (bits 11-0: the page's index, always 0 here).
  public static let hypercallPageMSR: UInt32 = 0x4000_0000
  /// The ABI version reported by CPUID and `xen_version(XENVER_version)`: 4.19.
  public static let version: UInt32 = 4 << 16 | 19

  /// `console_io` commands.
  public enum ConsoleIO: UInt64 { case write = 0, read = 1 }
  /// `xen_version` commands.
  public enum Version: UInt64 {
    case version = 0, extraVersion = 1, compileInfo = 2, capabilities = 3, changeset = 4
    case platformParameters = 5, getFeatures = 6, pageSize = 7, guestHandle = 8, commandLine = 9
  }
  /// `sched_op` commands.
  public enum SchedOp: UInt64 { case yield = 0, block = 1, shutdown = 2, poll = 3 }
  /// `sched_op(shutdown)` reasons.
  public enum ShutdownReason: UInt32, Sendable { case powerOff = 0, reboot = 1, suspend = 2, crash = 3, watchdog = 4 }
  /// `vcpu_op` commands.
  public enum VCPUOp: UInt64 {
    case initialise = 0, up = 1, down = 2, isUp = 3, getRunstateInfo = 4, registerRunstateMemoryArea = 5
    case setPeriodicTimer = 6, stopPeriodicTimer = 7, setSingleshotTimer = 8, stopSingleshotTimer = 9
    case registerVCPUInfo = 10
  }
  /// `event_channel_op` commands.
  public enum EventChannelOp: UInt64 {
    case bindInterdomain = 0, bindVIRQ = 1, bindPIRQ = 2, close = 3, send = 4, status = 5
    case allocUnbound = 6, bindIPI = 7, bindVCPU = 8, unmask = 9, reset = 10
  }
  /// Virtual interrupts a guest binds event channels to.
  public enum VIRQ: UInt32 { case timer = 0, debug = 1, console = 2 }
  /// `memory_op` commands.
  public enum MemoryOp: UInt64 {
    case increaseReservation = 0, decreaseReservation = 1, maximumRAMPage = 2, currentReservation = 3
    case maximumReservation = 4, memoryMap = 9
  }
  /// `mmuext_op` commands.
  public enum MMUExtOp: UInt32 {
    case pinL1Table = 0, pinL2Table = 1, pinL3Table = 2, pinL4Table = 3, unpinTable = 4
    case newBasePointer = 5, tlbFlushLocal = 6, invalidatePageLocal = 7, tlbFlushMulti = 8
    case invalidatePageMulti = 9, tlbFlushAll = 10, invalidatePageAll = 11, flushCacheAll = 12
    case setLDT = 13, newUserBasePointer = 15
  }
  /// `mmu_update` request types (the low 2 bits of `ptr`).
  public enum MMUUpdateCommand: UInt64 { case normalPageTableUpdate = 0, machphysUpdate = 1 }
  /// `update_va_mapping` flags: which TLB flush follows (bits 1-0), and for which vCPUs.
  public enum UpdateVAMappingFlush: UInt64 { case none = 0, tlbFlush = 1, invalidatePage = 2 }
  /// `callback` types of `set_callbacks`/`callback_op` (x86-64).
  public enum CallbackType: UInt32 { case event = 0, failsafe = 1, syscall = 2, nmi = 4 }
  /// `set_segment_base` registers.
  public enum SegmentBase: UInt64 { case fs = 0, gsUser = 1, gsKernel = 2, gsUserSelector = 3 }
}
