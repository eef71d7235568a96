/// The paravirtual monitor's ring-0 pages (`ParavirtMonitor`) for engines outside the VMM module
/// that run a guest kernel deprivileged at ring 3 themselves (`--engine trap`): the same GDT with
/// Xen's selectors, IDT, TSSs, trap stubs and monitor page tables, in the same reserved pages at
/// the top of low RAM, mapped supervisor-only through the same root-table slot. Nothing is copied:
/// every member forwards to `ParavirtMonitor`.
public struct DeprivilegedMonitorPages: Sendable, Equatable {
  /// The paravirtual monitor's layout these pages follow.
  let layout: ParavirtMonitor.Layout

  /// The pages for `cpus` vCPUs at the top of `memory`'s low RAM; nil when RAM is too small
  /// (under 4 MiB plus the pages) or `cpus` exceeds `maximumCPUs`.
  public init?(memory: GuestMemory, cpus: Int) {
    guard let layout = ParavirtMonitor.Layout(memory: memory, cpus: cpus) else { return nil }
    self.layout = layout
  }

  /// The most vCPUs the pages serve.
  public static var maximumCPUs: Int { ParavirtMonitor.Layout.maximumCPUs }
  /// The guest-physical bytes the pages occupy (the guest must never map them).
  public var reservedRange: Range<UInt64> { layout.reservedRange }
  /// The root-table slot mapping the monitor (guest-virtual 0xFFFF800000000000 up).
  public static var rootSlot: Int { ParavirtMonitor.Layout.rootSlot }
  /// The root-table entry every root table needs in `rootSlot` (present, writable, supervisor).
  public var rootEntry: UInt64 { layout.rootEntry }
  /// The stub index of SYSCALL's entry (after the 256 vectors).
  public static var syscallStub: UInt64 { ParavirtMonitor.Layout.syscallStub }

  /// Writes the pages into `memory`, the stubs trapping with instruction `trap`.
  public func writePages(into memory: GuestMemory, trap: [UInt8]) throws {
    try ParavirtMonitor(layout: layout).writePages(into: memory, trap: trap)
  }

  /// The stub a trap came from (a vector, or `syscallStub`), when `rip` is just past a stub's
  /// trap instruction of `trapLength` bytes; nil otherwise.
  public static func stubIndex(returnAddress rip: UInt64, trapLength: Int) -> UInt64? {
    ParavirtMonitor.stubIndex(returnAddress: rip, trapLength: trapLength)
  }

  /// Whether the CPU pushes an error code for exception `vector` (the stub pushes a zero otherwise).
  public static func pushesErrorCode(_ vector: UInt64) -> Bool {
    ParavirtMonitor.errorCodeVectors.contains(vector)
  }

  /// vCPU `index`'s registers for running at ring 3 on root table `cr3` under the monitor: Xen's
  /// ring-3 flat segments, the monitor's GDT, IDT and TSS, long mode with paging.
  public static func specialRegisters(vcpu index: Int, cr3: UInt64) -> SpecialRegisters {
    ParavirtMonitor.specialRegisters(vcpu: index, cr3: cr3)
  }

  /// The linear address of stub `index` (32 bytes each; indices past `syscallStub` are free for
  /// an engine's own ring-0 code, up to `stubCapacity`).
  public static func stubAddress(_ index: UInt64) -> UInt64 { ParavirtMonitor.Layout.stubAddress(index) }
  /// How many 32-byte stubs the stub pages hold.
  public static var stubCapacity: UInt64 {
    UInt64(ParavirtMonitor.Layout.stubPages * 4096) / ParavirtMonitor.Layout.stubSize
  }
  /// The guest-physical address of stub `index`.
  public func stubPhysical(_ index: UInt64) -> UInt64 {
    layout.stubFrame + index * ParavirtMonitor.Layout.stubSize
  }
  /// The top of vCPU `index`'s monitor stack (linear).
  public static func stackTop(_ index: Int) -> UInt64 { ParavirtMonitor.Layout.stackTop(index) }
  /// The monitor's ring-0 code selector.
  public static var monitorCode: UInt16 { ParavirtMonitor.Selector.monitorCode }
  /// The monitor's ring-0 data selector.
  public static var monitorData: UInt16 { ParavirtMonitor.Selector.monitorData }

  /// The SYSCALL MSRs (STAR, LSTAR, CSTAR, SFMASK) that send SYSCALL to the monitor's stub.
  public static var syscallMSRs: [UInt32: UInt64] { ParavirtMonitor.msrs }

  /// The guest-physical address of linear `address` on vCPU `index`'s monitor stack page, nil
  /// when it lies elsewhere.
  public func stackPhysical(vcpu index: Int, linear address: UInt64) -> UInt64? {
    let top = ParavirtMonitor.Layout.stackTop(index)
    guard address >= top - 0x1000, address < top else { return nil }
    return layout.stackFrame(index) + (address - (top - 0x1000))
  }
}
