/// Where the interrupt controller and the timer live.
public enum InterruptControllerPlacement: String, Sendable, CaseIterable {
  /// The VMM's i8259 pair and i8254 (devices in Sources/VMM/Devices); interrupts are injected
  /// through `VirtualCPU.injectInterrupt`. Every engine supports it.
  case user
  /// The engine's own PIC and PIT (KVM's in-kernel irqchip and PIT2). The VMM does not register
  /// its PIC and PIT; devices raise interrupts through the engine's `InterruptSink`.
  case kernel
}

/// The CPU identity a guest is shown through CPUID (`trivisor run --cpu`): the vendor string of
/// leaf 0 and the family/model/stepping signature of leaf 1.
public struct GuestCPUIdentity: Sendable, Equatable {
  /// "GenuineIntel" or "AuthenticAMD".
  public var vendor: String
  /// CPUID.1:EAX.
  public var signature: UInt32
  /// An identity with CPUID vendor string `vendor` and leaf-1 signature `signature`.
  public init(vendor: String, signature: UInt32) {
    self.vendor = vendor
    self.signature = signature
  }
}

/// What the VMM asks of an engine when it builds a machine.
public struct EngineOptions: Sendable {
  /// Where the PIC and PIT live: the VMM's (`.user`) or the engine's (`.kernel`).
  public var interruptController: InterruptControllerPlacement
  /// The CPU identity to present; nil: the engine's default (the interpreter's Intel flavour; on
  /// kvm, the host's own identity). The interpreter also follows the vendor's behaviour where
  /// Intel and AMD differ; kvm runs guest code on the host CPU, so only CPUID changes there.
  public var cpu: GuestCPUIdentity?
  /// Options for `Engine.createVM`; the defaults are the VMM's PIC/PIT and the engine's own CPU identity.
  public init(interruptController: InterruptControllerPlacement = .user, cpu: GuestCPUIdentity? = nil) {
    self.interruptController = interruptController
    self.cpu = cpu
  }
}

/// An engine as the VMM sees it before any VM exists. Engines follow KVM's object model (and
/// rust-vmm's `kvm-ioctls`): the engine creates a VM over guest memory, the VM creates vCPU `i`.
/// An engine never starts threads for its vCPUs: the VMM's runners call `run` on the thread that
/// owns each vCPU. Engines register in the Launcher's `EngineRegistry`.
public protocol Engine: AnyObject {
  /// The name the command line uses (`kvm`, `interp`).
  var name: String { get }
  /// Creates the engine's VM over `memory` (already loaded: ROM regions must exist by now).
  func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM
}

/// One guest's VM inside an engine: what is shared by its vCPUs (KVM's VM descriptor and in-kernel
/// irqchip; the interpreter's shared clock).
public protocol EngineVM: AnyObject {
  /// Non-nil exactly when the interrupt controller and timer live in the engine
  /// (`InterruptControllerPlacement.kernel`): devices raise their lines here.
  var engineInterruptSink: (any InterruptSink)? { get }
  /// The guest clock when the engine keeps virtual time (deterministic runs); nil: host time.
  var clock: (any InstructionDrivenClock)? { get }
  /// Creates vCPU `index` (0 is the bootstrap processor), in its power-on state.
  func createVCPU(index: Int) throws(EngineError) -> any VirtualCPU
  /// The instruction the hypercall page's stubs trap with (`ParavirtDomain`): it must end in
  /// `VMExit.hypercall` at any privilege level, with the number in EAX and the arguments in their
  /// registers untouched. VMCALL unless the engine says otherwise.
  var hypercallInstruction: [UInt8] { get }
  /// Whether SYSCALL at ring 3 enters its LSTAR handler at ring 0, as the architecture says. The
  /// deprivileged paravirtual mode's monitor relies on it; where it is false (kvm on a host with
  /// that quirk, `KVMSyscallProbe`) the monitor emulates SYSCALL from #UD instead. True unless
  /// the engine says otherwise.
  var syscallFromRing3EntersRing0: Bool { get }
  /// Whether the engine keeps its own copies of the guest's page tables that a write the VMM
  /// makes into guest memory does not reach (kvm on a host without EPT/NPT: its shadow MMU
  /// trusts that page-table pages change only by guest writes it intercepts). The paravirtual
  /// domain then has the vCPU drop them (`VirtualCPU.invalidateTranslations`) before the guest
  /// runs on tables the VMM changed: at a CR3 switch or a TLB flush after `mmu_update`. False
  /// unless the engine says otherwise (its TLB flush at such points is enough).
  var shadowsGuestPageTables: Bool { get }
}

extension EngineVM {
  /// VMCALL.
  public var hypercallInstruction: [UInt8] { [0x0F, 0x01, 0xC1] }
  /// True: the software engines model SYSCALL as the architecture defines it.
  public var syscallFromRing3EntersRing0: Bool { true }
  /// False: the software engines walk the guest's tables in guest memory.
  public var shadowsGuestPageTables: Bool { false }
}
