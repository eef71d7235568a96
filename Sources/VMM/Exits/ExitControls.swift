/// Which guest events leave the guest, in the spirit of the VMCS execution controls.
///
/// Each engine honours what its mechanism allows and reports the rest in
/// `VirtualCPU.unsupportedExitControls`: KVM, for example, decides HLT, CPUID and MSR exiting
/// itself, while the interpreter can trap anything.
public struct ExitControls: Sendable, Equatable {
  /// `HLT` leaves the guest (the VMM waits for the next interrupt) instead of waiting inside the engine.
  public var hltExiting = true
  /// CPUID leaves the guest (`VMExit.cpuid`).
  public var cpuidExiting = false
  /// RDTSC/RDTSCP leave the guest.
  public var rdtscExiting = false
  /// INVLPG leaves the guest.
  public var invlpgExiting = false
  /// MSRs whose `RDMSR`/`WRMSR` exit to the VMM; others are handled by the engine (or #GP).
  public var msrReadExits: Set<UInt32> = []
  /// WRMSR of these MSRs leaves the guest.
  public var msrWriteExits: Set<UInt32> = []
  /// When true every port exits (the default); when false only the ports in `ioExitPorts` do and
  /// the rest read as all ones.
  public var exitOnAllPorts = true
  /// The ports whose accesses leave the guest when the engine keeps other ports to itself (an I/O bitmap);
  /// empty: every port exits.
  public var ioExitPorts: Set<UInt16> = []
  /// Bit n set: guest exception vector n exits instead of being delivered through the guest IDT.
  public var exceptionBitmap: UInt32 = 0

  /// Controls with nothing but the always-exiting events selected.
  public init() {}

  /// Names of the controls that differ from `other` (for reporting what an engine could not honour).
  public func differences(from other: ExitControls) -> [String] {
    var d: [String] = []
    if hltExiting != other.hltExiting { d.append("hlt-exiting") }
    if cpuidExiting != other.cpuidExiting { d.append("cpuid-exiting") }
    if rdtscExiting != other.rdtscExiting { d.append("rdtsc-exiting") }
    if invlpgExiting != other.invlpgExiting { d.append("invlpg-exiting") }
    if msrReadExits != other.msrReadExits || msrWriteExits != other.msrWriteExits { d.append("msr-bitmap") }
    if exitOnAllPorts != other.exitOnAllPorts || ioExitPorts != other.ioExitPorts { d.append("io-bitmap") }
    if exceptionBitmap != other.exceptionBitmap { d.append("exception-bitmap") }
    return d
  }
}
