import CKVM
import Synchronization
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// One KVM virtual machine (`KVM_CREATE_VM`): its guest memory slots, the optional in-kernel
/// interrupt controller and PIT, and the vCPUs created from it.
public final class KVMVirtualMachine: EngineVM, @unchecked Sendable {
  public let system: KVMSystem
  /// The CPU identity every vCPU shows (nil: the host's).
  public let identity: GuestCPUIdentity?
  /// The in-kernel irqchip's lines (used only when `hasInKernelIRQChip`).
  public private(set) lazy var interruptSink = KVMInterruptSink(vm: self)
  /// The VM file descriptor (VM ioctls).
  public let fd: Int32
  public let memory: GuestMemory
  /// True when `KVM_CREATE_IRQCHIP` + `KVM_CREATE_PIT2` made KVM's PIC, IOAPIC, LAPIC and PIT
  /// the guest's interrupt controller and timer.
  public let hasInKernelIRQChip: Bool
  /// Regions mapped writable although they are ROM (the host lacks KVM_CAP_READONLY_MEM).
  public private(set) var writableROMRegions = 0
  /// The spare slot whose moves drop KVM's shadow page tables (`dropShadowPageTables`).
  let shadowZapSlot: KVMShadowZapSlot

  /// Where KVM_SET_TSS_ADDR puts the three pages Intel VMX needs for real-mode emulation (just
  /// below the 4 GiB firmware area, inside the MMIO hole) and the identity-map page before them.
  public static let tssAddress: UInt64 = 0xFFFB_D000
  public static let identityMapAddress: UInt64 = 0xFFFB_C000

  /// Creates the VM and maps every region of `memory` as a memory slot (ROM read-only, so guest
  /// writes to it become MMIO exits).
  public init(
    system: KVMSystem, memory: GuestMemory, inKernelIRQChip: Bool, identity: GuestCPUIdentity? = nil
  ) throws(EngineError) {
    self.system = system
    self.identity = identity
    self.memory = memory
    let vm = ckvm_ioctl(system.fd, CKVM_CREATE_VM, 0)
    guard vm >= 0 else { throw EngineError("KVM_CREATE_VM failed: \(errnoText(-vm))") }
    fd = vm
    hasInKernelIRQChip = inKernelIRQChip
    shadowZapSlot = KVMShadowZapSlot(memorySlots: system.capabilities.memorySlots)
    do throws(EngineError) {
      try mapMemory()
      if system.cpuVendor() == "GenuineIntel" {
        var identity = Self.identityMapAddress
        try check(ckvm_ioctl_ptr(fd, CKVM_SET_IDENTITY_MAP_ADDR, &identity), "KVM_SET_IDENTITY_MAP_ADDR")
        try check(ckvm_ioctl(fd, CKVM_SET_TSS_ADDR, UInt(Self.tssAddress)), "KVM_SET_TSS_ADDR")
      }
      if inKernelIRQChip {
        guard system.capabilities.irqchip, system.capabilities.pit2 else {
          throw EngineError("--irqchip kernel needs KVM_CAP_IRQCHIP and KVM_CAP_PIT2, which this host lacks")
        }
        try check(ckvm_ioctl(fd, CKVM_CREATE_IRQCHIP, 0), "KVM_CREATE_IRQCHIP")
        var pit = kvm_pit_config()
        pit.flags = 0
        try check(ckvm_ioctl_ptr(fd, CKVM_CREATE_PIT2, &pit), "KVM_CREATE_PIT2")
      }
    } catch {
      close(fd)
      throw error
    }
  }

  deinit { close(fd) }

  private func mapMemory() throws(EngineError) {
    for (slot, region) in memory.regions.enumerated() {
      var flags: UInt32 = 0
      if region.kind == .rom {
        if system.capabilities.readonlyMemory { flags |= CKVM_MEM_READONLY } else { writableROMRegions += 1 }
      }
      var r = kvm_userspace_memory_region(
        slot: UInt32(slot), flags: flags, guest_phys_addr: region.guestAddress, memory_size: region.size,
        userspace_addr: UInt64(UInt(bitPattern: region.host)))
      try check(ckvm_ioctl_ptr(fd, CKVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION slot \(slot)")
    }
  }

  /// vCPUs created so far.
  private let createdVCPUs = Mutex(0)
  /// How many vCPUs this VM has created.
  public var vcpusCreated: Int { createdVCPUs.withLock { $0 } }

  /// The MSRs whose accesses exit to userspace so far (KVM's filter is VM-wide: the union of what
  /// the vCPUs' exit controls ask for).
  private let trappedMSRs = Mutex<Set<UInt32>?>(nil)

  /// Makes RDMSR/WRMSR of `indices` exit to userspace on every vCPU, together with MSRs KVM would
  /// fault on (`KVM_CAP_X86_USER_SPACE_MSR` with `KVM_X86_SET_MSR_FILTER`; x2APIC MSRs need no
  /// filter: without the in-kernel local APIC KVM cannot answer them and they exit anyway).
  /// Throws when the host lacks either capability or refuses the filter.
  public func trapMSRs(_ indices: Set<UInt32>) throws(EngineError) {
    let result: Result<Void, EngineError> = trappedMSRs.withLock { trapped in
      if let trapped, indices.isSubset(of: trapped) { return .success(()) }
      let all = (trapped ?? []).union(indices)
      guard system.capabilities.userSpaceMSRFilter else {
        return .failure(EngineError("KVM lacks KVM_CAP_X86_USER_SPACE_MSR or KVM_CAP_X86_MSR_FILTER"))
      }
      let filtered = all.filter { !(0x800...0x8FF).contains($0) }.sorted()
      guard filtered.count <= 16 else { return .failure(EngineError("KVM's MSR filter holds at most 16 ranges")) }
      let r = ckvm_trap_msrs(fd, filtered, UInt32(filtered.count))
      guard r >= 0 else { return .failure(EngineError("KVM_X86_SET_MSR_FILTER failed: \(errnoText(-r))")) }
      trapped = all
      return .success(())
    }
    if case .failure(let error) = result { throw error }
  }

  /// Drives an interrupt line of the in-kernel irqchip (`KVM_IRQ_LINE`).
  public func setIRQLine(_ irq: UInt32, level: Bool) throws(EngineError) {
    var l = kvm_irq_level()
    l.irq = irq
    l.level = level ? 1 : 0
    try check(ckvm_ioctl_ptr(fd, CKVM_IRQ_LINE, &l), "KVM_IRQ_LINE \(irq)")
  }

  /// Creates vCPU `index` (`KVM_CREATE_VCPU`), maps its `kvm_run` and gives it KVM's supported
  /// CPUID, with leaf 0's vendor and leaf 1's signature rewritten to the VM's `identity` if any.
  public func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU {
    try createKVMVCPU(index: index)
  }

  /// `createVCPU` with the concrete type, for kvm-specific tests and benchmarks.
  public func createKVMVCPU(index: Int) throws(EngineError) -> KVMVirtualCPU {
    guard let id = UInt32(exactly: index) else { throw EngineError("vCPU index \(index) out of range") }
    let vcpu = try KVMVirtualCPU(vm: self, id: id, identity: identity)
    createdVCPUs.withLock { $0 += 1 }
    return vcpu
  }

  /// Device interrupt lines as `KVM_IRQ_LINE` when the irqchip is in the kernel; nil otherwise.
  public var engineInterruptSink: (any InterruptSink)? { hasInKernelIRQChip ? interruptSink : nil }
  /// KVM runs on host time.
  public var clock: (any InstructionDrivenClock)? { nil }
}

/// `InterruptSink` for the in-kernel irqchip: device interrupt lines become `KVM_IRQ_LINE`.
public final class KVMInterruptSink: InterruptSink {
  /// The VM whose irqchip the lines reach (the VM owns this sink).
  public unowned let vm: KVMVirtualMachine
  /// ioctl failures (reported by `--verbose`; a line change cannot throw through the device).
  public private(set) var failures: UInt64 = 0
  public init(vm: KVMVirtualMachine) { self.vm = vm }
  public func setIRQ(_ line: Int, level: Bool) {
    guard (0...15).contains(line) else { return }
    do { try vm.setIRQLine(UInt32(line), level: level) } catch { failures += 1 }
  }
}

@inline(__always)
func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(EngineError) {
  if result < 0 { throw EngineError("\(operation()) failed: \(errnoText(-result))") }
}
